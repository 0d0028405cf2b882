// The value type of the Jinja interpreter: Python-like dynamic values (None, bool, int, float,
// str, list/tuple, dict, namespace, callable) plus Jinja's Undefined.
//
// Semantics follow Python/Jinja2 as used by Hugging Face chat templates: dicts keep insertion
// order, strings are indexed and measured in Unicode code points, lists and dicts are shared
// by reference and never mutated after creation (HF renders in an immutable sandbox), except
// namespace objects, whose attributes `{% set ns.x = … %}` assigns.
//
// Internal to core/jinja: functions here throw jinja::TemplateError; the public entry points
// (Template::Parse / Render) catch it and return a Status.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace lms::jinja {

// Thrown inside the interpreter; carries the template position once known (line/col 1-based).
class TemplateError : public std::runtime_error {
 public:
  explicit TemplateError(const std::string& what, int line = 0, int col = 0)
      : std::runtime_error(what), line_(line), col_(col) {}
  int line() const { return line_; }
  int col() const { return col_; }
  bool has_position() const { return line_ > 0; }
  void set_position(int line, int col) { line_ = line; col_ = col; }

 private:
  int line_ = 0;
  int col_ = 0;
};

class Value;

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using NativeFunction = std::function<Value(CallArgs&)>;

// Insertion-ordered string-keyed map (Python dict order). Lookups are linear: template dicts
// are small (messages, tool schemas).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  void Set(std::string_view key, Value v);
};

struct Function {
  std::string name;
  NativeFunction fn;
};

enum class Kind : uint8_t {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,       // list or tuple (is_tuple())
  kDict,
  kNamespace,  // jinja2 namespace(): the only mutable object
  kFunction,   // builtin global, bound method or macro
  kIterator,   // a one-shot Python iterator/generator (what map/select/… return in jinja2):
               // iterable and truthy, but no len(), no indexing, not JSON serializable
};

class Value {
 public:
  Value() = default;  // Undefined
  static Value Undefined(std::string hint = {});
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value Str(std::string s);
  // A string marked safe (jinja2 Markup, from the `safe` filter): `markup + str` HTML-escapes
  // the str operand, as Python's markupsafe does. HF templates rely on this by accident.
  static Value Markup(std::string s);
  static Value List(std::vector<Value> items, bool tuple = false);
  static Value Iterator(std::vector<Value> items);
  static Value MakeDict(Dict d);
  // Wraps an existing dict without copying (the interpreter reuses loop objects).
  static Value SharedDict(std::shared_ptr<Dict> d);
  static Value MakeNamespace(Dict d);
  static Value MakeFunction(std::string name, NativeFunction fn);
  static Value FromJson(const nlohmann::json& j);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && tuple_; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_iterator() const { return kind_ == Kind::kIterator; }

  bool bool_value() const { return b_; }
  int64_t int_value() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  // Numeric value as double (int, bool or float).
  double number() const;
  // The string (kString), or for Undefined the hint naming what was missing.
  const std::string& str() const { return s_; }
  const std::vector<Value>& list() const;  // kList or kIterator
  const Dict& dict() const;        // kDict or kNamespace
  Dict& namespace_dict() const;    // kNamespace only: mutable attributes
  const Function& function() const;

  // Python truthiness; Undefined is false.
  bool Truthy() const;
  // Python str(): what {{ x }} prints. Undefined prints as "".
  std::string ToString() const;
  // Python repr() (strings quoted, nested values in lists/dicts use repr).
  std::string Repr() const;
  // Python type name for error messages ("str", "dict", "NoneType", "undefined"…).
  std::string TypeName() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false;  // kList: a tuple; kString: Markup
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0.0;
  std::string s_;
  std::shared_ptr<const std::vector<Value>> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<const Function> fn_;
};

// Python == between values (int/float/bool compare numerically, lists and dicts deeply).
bool Equals(const Value& a, const Value& b);

// json.dumps(x, ensure_ascii=…, indent=…, separators=…, sort_keys=…) as Python formats it.
// indent < 0 means None (single line). Throws TemplateError for values JSON cannot hold.
struct JsonDumpOptions {
  int indent = -1;
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_separator;  // empty: Python's default ("," with indent, ", " without)
  std::string key_separator = ": ";
  bool custom_item_separator = false;
};
std::string DumpJson(const Value& v, const JsonDumpOptions& options);

// markupsafe.escape: & < > ' " as HTML entities.
std::string HtmlEscape(std::string_view s);

// Python float repr: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string PyFloatRepr(double f);

// UTF-8 helpers: strings are measured and indexed by code point, like Python str.
size_t Utf8Length(std::string_view s);
// Byte offsets of each code point start, plus s.size() at the end.
std::vector<size_t> Utf8Offsets(std::string_view s);

}  // namespace lms::jinja
