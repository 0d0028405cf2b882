#include "core/jinja/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/jinja/string_util.h"

namespace lms::jinja {

void ThrowUndefined(const Value& v) {
  throw TemplateError(v.str().empty() ? std::string("undefined value used") : v.str());
}

std::vector<std::optional<Value>> BindArgs(const std::string& what, CallArgs& args,
                                           const std::vector<std::string>& params) {
  std::vector<std::optional<Value>> out(params.size());
  if (args.positional.size() > params.size())
    throw TemplateError(what + "() takes at most " + std::to_string(params.size()) + " arguments (" +
                        std::to_string(args.positional.size()) + " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = std::move(args.positional[i]);
  for (auto& [key, value] : args.keyword) {
    auto it = std::find(params.begin(), params.end(), key);
    if (it == params.end()) throw TemplateError(what + "() got an unexpected keyword argument '" + key + "'");
    size_t idx = static_cast<size_t>(it - params.begin());
    if (out[idx]) throw TemplateError(what + "() got multiple values for argument '" + key + "'");
    out[idx] = std::move(value);
  }
  return out;
}

namespace {

Value NoAttr(const Value& obj, const std::string& name) {
  std::string msg = "'";  // built by appending: GCC 12 -Wrestrict misfires on "lit" + string&&
  msg += obj.TypeName();
  msg += " object' has no attribute '";
  msg += name;
  msg += "'";
  return Value::Undefined(std::move(msg));
}

const std::string& RequireString(const std::string& what, const Value& v) {
  if (v.is_undefined()) ThrowUndefined(v);
  if (!v.is_string()) throw TemplateError(what + ": expected a string, got " + v.TypeName());
  return v.str();
}

int64_t RequireInt(const std::string& what, const Value& v) {
  if (v.is_undefined()) ThrowUndefined(v);
  if (!v.is_int() && !v.is_bool()) throw TemplateError(what + ": expected an integer, got " + v.TypeName());
  return v.int_value();
}

// ---- string methods ----

Value StringMethodImpl(const std::string& s, const std::string& name, CallArgs& args) {
  auto bind = [&](const std::vector<std::string>& params) { return BindArgs("str." + name, args, params); };
  auto opt_chars = [&](const std::optional<Value>& v) -> std::optional<std::string> {
    if (!v || v->is_none()) return std::nullopt;
    return RequireString("str." + name, *v);
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto a = bind({"chars"});
    auto chars = opt_chars(a[0]);
    return Value::Str(StripString(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "upper") return bind({}), Value::Str(AsciiUpper(s));
  if (name == "lower") return bind({}), Value::Str(AsciiLower(s));
  if (name == "title") return bind({}), Value::Str(PyTitle(s));
  if (name == "capitalize") return bind({}), Value::Str(Capitalize(s));
  if (name == "split" || name == "rsplit") {
    auto a = bind({"sep", "maxsplit"});
    std::optional<std::string> sep = opt_chars(a[0]);
    int64_t maxsplit = a[1] ? RequireInt("str.split", *a[1]) : -1;
    if (sep && sep->empty()) throw TemplateError("str.split: empty separator");
    std::vector<std::string> parts = name == "split" ? PySplit(s, sep, maxsplit) : PyRSplit(s, sep, maxsplit);
    std::vector<Value> out;
    for (auto& p : parts) out.push_back(Value::Str(std::move(p)));
    return Value::List(std::move(out));
  }
  if (name == "splitlines") {
    bind({});
    std::vector<Value> out;
    for (auto& p : SplitLines(s)) out.push_back(Value::Str(std::move(p)));
    return Value::List(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    auto a = bind({"prefix"});
    if (!a[0]) throw TemplateError("str." + name + "() takes at least 1 argument");
    std::vector<std::string> candidates;
    if (a[0]->is_tuple()) {
      for (const auto& v : a[0]->list()) candidates.push_back(RequireString("str." + name, v));
    } else {
      candidates.push_back(RequireString("str." + name, *a[0]));
    }
    for (const auto& c : candidates) {
      bool hit = name == "startswith" ? s.compare(0, c.size(), c) == 0
                                      : (s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0);
      if (hit) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (name == "replace") {
    auto a = bind({"old", "new", "count"});
    if (!a[0] || !a[1]) throw TemplateError("str.replace() takes at least 2 arguments");
    int64_t count = a[2] ? RequireInt("str.replace", *a[2]) : -1;
    return Value::Str(ReplaceString(s, RequireString("str.replace", *a[0]), RequireString("str.replace", *a[1]), count));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    auto a = bind({"sub"});
    if (!a[0]) throw TemplateError("str." + name + "() takes at least 1 argument");
    const std::string& sub = RequireString("str." + name, *a[0]);
    if (name == "count") return Value::Int(CountSubstring(s, sub));
    size_t pos = (name == "find" || name == "index") ? s.find(sub) : s.rfind(sub);
    if (pos == std::string::npos) {
      if (name == "index" || name == "rindex") throw TemplateError("str." + name + ": substring not found");
      return Value::Int(-1);
    }
    return Value::Int(static_cast<int64_t>(Utf8Length(std::string_view(s).substr(0, pos))));
  }
  if (name == "join") {
    auto a = bind({"iterable"});
    if (!a[0]) throw TemplateError("str.join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const auto& v : Iterate(*a[0])) {
      if (!first) out += s;
      first = false;
      out += RequireString("str.join", v);
    }
    return Value::Str(std::move(out));
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    bind({});
    return Value::Bool(AsciiClassify(s, name));
  }
  throw TemplateError("unsupported string method '" + name + "'");
}

// Markup's str methods return Markup (markupsafe wraps them).
Value StringMethod(const Value& obj, const std::string& name, CallArgs& args) {
  if (obj.is_markup() && name == "replace") {
    for (auto& a : args.positional)
      if (a.is_string() && !a.is_markup()) a = Value::Markup(HtmlEscape(a.str()));
  }
  Value v = StringMethodImpl(obj.str(), name, args);
  if (obj.is_markup() && v.is_string()) return Value::Markup(v.str());
  return v;
}

bool IsStringMethod(const std::string& name) {
  static const char* kNames[] = {"strip", "lstrip", "rstrip", "upper", "lower", "title", "capitalize", "split",
                                 "rsplit", "splitlines", "startswith", "endswith", "replace", "find", "rfind",
                                 "index", "rindex", "count", "join", "isdigit", "isalpha", "isalnum", "isspace",
                                 "isupper", "islower"};
  for (const char* n : kNames)
    if (name == n) return true;
  return false;
}

Value ItemsOf(const Value& dict) {
  std::vector<Value> out;
  for (const auto& [k, v] : dict.dict().items) out.push_back(Value::List({Value::Str(k), v}, /*tuple=*/true));
  return Value::List(std::move(out));
}

Value DictMethod(const Value& obj, const std::string& name, CallArgs& args) {
  const std::string what = "dict." + name;
  if (name == "items") return BindArgs(what, args, {}), ItemsOf(obj);
  if (name == "keys" || name == "values") {
    BindArgs(what, args, {});
    std::vector<Value> out;
    for (const auto& [k, v] : obj.dict().items) out.push_back(name == "keys" ? Value::Str(k) : v);
    return Value::List(std::move(out));
  }
  if (name == "get") {
    auto a = BindArgs(what, args, {"key", "default"});
    if (!a[0]) throw TemplateError("dict.get() takes at least 1 argument");
    if (a[0]->is_string()) {
      if (const Value* v = obj.dict().Find(a[0]->str())) return *v;
    }
    return a[1] ? *a[1] : Value::None();
  }
  throw TemplateError("unsupported dict method '" + name + "'");
}

Value ListMethod(const Value& obj, const std::string& name, CallArgs& args) {
  auto a = BindArgs("list." + name, args, {"value"});
  if (!a[0]) throw TemplateError("list." + name + "() takes exactly one argument");
  const auto& items = obj.list();
  if (name == "count") {
    int64_t n = 0;
    for (const auto& v : items) n += Equals(v, *a[0]) ? 1 : 0;
    return Value::Int(n);
  }
  for (size_t i = 0; i < items.size(); ++i)
    if (Equals(items[i], *a[0])) return Value::Int(static_cast<int64_t>(i));
  throw TemplateError("list.index(x): x not in list");
}

Value BoundMethod(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    return Value::MakeFunction("str." + name, [obj, name](CallArgs& args) { return StringMethod(obj, name, args); });
  }
  if (obj.is_dict()) {
    return Value::MakeFunction("dict." + name, [obj, name](CallArgs& args) { return DictMethod(obj, name, args); });
  }
  return Value::MakeFunction("list." + name, [obj, name](CallArgs& args) { return ListMethod(obj, name, args); });
}

bool IsDictMethod(const std::string& name) {
  return name == "items" || name == "keys" || name == "values" || name == "get";
}

// Python index normalization for obj[i]; returns false when out of range.
bool NormalizeIndex(int64_t& i, size_t len) {
  if (i < 0) i += static_cast<int64_t>(len);
  return i >= 0 && i < static_cast<int64_t>(len);
}

}  // namespace

Value GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Kind::kUndefined: ThrowUndefined(obj);
    case Kind::kDict:
      if (IsDictMethod(name)) return BoundMethod(obj, name);
      if (const Value* v = obj.dict().Find(name)) return *v;
      return NoAttr(obj, name);
    case Kind::kNamespace:
      if (const Value* v = obj.dict().Find(name)) return *v;
      return NoAttr(obj, name);
    case Kind::kString:
      if (IsStringMethod(name)) return BoundMethod(obj, name);
      return NoAttr(obj, name);
    case Kind::kList:
      if (name == "index" || name == "count") return BoundMethod(obj, name);
      return NoAttr(obj, name);
    default: return NoAttr(obj, name);
  }
}

Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  switch (obj.kind()) {
    case Kind::kDict:
    case Kind::kNamespace:
      if (key.is_string()) {
        if (const Value* v = obj.dict().Find(key.str())) return *v;
        return GetAttr(obj, key.str());
      }
      return Value::Undefined("'" + obj.TypeName() + " object' has no attribute " + key.Repr());
    case Kind::kList:
      if (key.is_int() || key.is_bool()) {
        int64_t i = key.int_value();
        if (NormalizeIndex(i, obj.list().size())) return obj.list()[static_cast<size_t>(i)];
        return Value::Undefined("list index " + key.ToString() + " out of range");
      }
      if (key.is_string()) return GetAttr(obj, key.str());
      return Value::Undefined("'list object' has no attribute " + key.Repr());
    case Kind::kString:
      if (key.is_int() || key.is_bool()) {
        std::vector<size_t> offs = Utf8Offsets(obj.str());
        int64_t i = key.int_value();
        if (NormalizeIndex(i, offs.size() - 1))
          return Value::Str(obj.str().substr(offs[static_cast<size_t>(i)], offs[static_cast<size_t>(i) + 1] - offs[static_cast<size_t>(i)]));
        return Value::Undefined("string index " + key.ToString() + " out of range");
      }
      if (key.is_string()) return GetAttr(obj, key.str());
      return Value::Undefined("'str object' has no attribute " + key.Repr());
    default:
      return Value::Undefined("'" + obj.TypeName() + " object' has no attribute " + key.Repr());
  }
}

Value SliceValue(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) ThrowUndefined(obj);
  auto as_index = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    return RequireInt("slice index", v);
  };
  int64_t step = as_index(step_v).value_or(1);
  if (step == 0) throw TemplateError("slice step cannot be zero");
  std::vector<size_t> offs;
  size_t len;
  if (obj.is_string()) {
    offs = Utf8Offsets(obj.str());
    len = offs.size() - 1;
  } else if (obj.is_list()) {
    len = obj.list().size();
  } else {
    throw TemplateError("'" + obj.TypeName() + "' object is not subscriptable");
  }
  const int64_t n = static_cast<int64_t>(len);
  auto adjust = [&](std::optional<int64_t> v, bool is_start) {
    if (!v) return is_start ? (step < 0 ? n - 1 : 0) : (step < 0 ? -1 : n);
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= n) {
      x = step < 0 ? n - 1 : n;
    }
    return x;
  };
  int64_t start = adjust(as_index(start_v), true);
  int64_t stop = adjust(as_index(stop_v), false);
  std::vector<int64_t> idx;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(i);
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : idx) out.append(obj.str(), offs[i], offs[i + 1] - offs[i]);
    return Value::Str(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t i : idx) out.push_back(obj.list()[static_cast<size_t>(i)]);
  return Value::List(std::move(out), obj.is_tuple());
}

std::vector<Value> Iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return {};
    case Kind::kList:
    case Kind::kIterator: return v.list();
    case Kind::kDict: {
      std::vector<Value> keys;
      for (const auto& [k, _] : v.dict().items) keys.push_back(Value::Str(k));
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      std::vector<size_t> offs = Utf8Offsets(v.str());
      for (size_t i = 0; i + 1 < offs.size(); ++i) chars.push_back(Value::Str(v.str().substr(offs[i], offs[i + 1] - offs[i])));
      return chars;
    }
    default: throw TemplateError("'" + v.TypeName() + "' object is not iterable");
  }
}

namespace {

[[noreturn]] void BadOperands(const std::string& op, const Value& a, const Value& b) {
  throw TemplateError("unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Value Repeat(const Value& seq, int64_t times) {
  if (seq.is_string()) {
    std::string out;
    if (times > 0) {
      if (seq.str().size() * static_cast<size_t>(times) > (64u << 20)) throw TemplateError("string repetition too large");
      for (int64_t i = 0; i < times; ++i) out += seq.str();
    }
    return seq.is_markup() ? Value::Markup(std::move(out)) : Value::Str(std::move(out));
  }
  std::vector<Value> out;
  if (times > 0) {
    if (seq.list().size() * static_cast<size_t>(times) > (1u << 20)) throw TemplateError("list repetition too large");
    for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
  }
  return Value::List(std::move(out), seq.is_tuple());
}

}  // namespace

Value BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::Str(a.ToString() + b.ToString());
  if (a.is_undefined()) ThrowUndefined(a);
  if (b.is_undefined()) ThrowUndefined(b);
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (ints) return Value::Int(a.int_value() + b.int_value());
    if (nums) return Value::Float(a.number() + b.number());
    if (a.is_string() && b.is_string()) {
      // markupsafe: Markup + str escapes the plain operand and stays Markup.
      if (a.is_markup() && !b.is_markup()) return Value::Markup(a.str() + HtmlEscape(b.str()));
      if (b.is_markup() && !a.is_markup()) return Value::Markup(HtmlEscape(a.str()) + b.str());
      if (a.is_markup()) return Value::Markup(a.str() + b.str());
      return Value::Str(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return Value::List(std::move(out), a.is_tuple());
    }
    if (a.is_string() || b.is_string())
      throw TemplateError("can only concatenate str (not \"" + (a.is_string() ? b : a).TypeName() + "\") to str");
    BadOperands(op, a, b);
  }
  if (op == "-") {
    if (ints) return Value::Int(a.int_value() - b.int_value());
    if (nums) return Value::Float(a.number() - b.number());
    BadOperands(op, a, b);
  }
  if (op == "*") {
    if (ints) return Value::Int(a.int_value() * b.int_value());
    if (nums) return Value::Float(a.number() * b.number());
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return Repeat(a, b.int_value());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return Repeat(b, a.int_value());
    BadOperands(op, a, b);
  }
  if (!nums) BadOperands(op, a, b);
  if (op == "/") {
    if (b.number() == 0.0) throw TemplateError("division by zero");
    return Value::Float(a.number() / b.number());
  }
  if (op == "//") {
    if (b.number() == 0.0) throw TemplateError("integer division or modulo by zero");
    if (ints) return Value::Int(FloorDiv(a.int_value(), b.int_value()));
    return Value::Float(std::floor(a.number() / b.number()));
  }
  if (op == "%") {
    if (b.number() == 0.0) throw TemplateError("integer division or modulo by zero");
    if (ints) {
      int64_t r = a.int_value() % b.int_value();
      if (r != 0 && ((r < 0) != (b.int_value() < 0))) r += b.int_value();
      return Value::Int(r);
    }
    double r = std::fmod(a.number(), b.number());
    if (r != 0.0 && ((r < 0) != (b.number() < 0))) r += b.number();
    return Value::Float(r);
  }
  if (op == "**") {
    if (ints && b.int_value() >= 0) {
      int64_t base = a.int_value(), e = b.int_value(), result = 1;
      while (e > 0) {
        if (e & 1) result *= base;
        base *= base;
        e >>= 1;
      }
      return Value::Int(result);
    }
    return Value::Float(std::pow(a.number(), b.number()));
  }
  throw TemplateError("unknown operator '" + op + "'");
}

int Compare(const Value& a, const Value& b) {
  if (a.is_undefined()) ThrowUndefined(a);
  if (b.is_undefined()) ThrowUndefined(b);
  if (a.is_number() && b.is_number()) {
    if (!a.is_float() && !b.is_float()) return a.int_value() < b.int_value() ? -1 : a.int_value() > b.int_value() ? 1 : 0;
    return a.number() < b.number() ? -1 : a.number() > b.number() ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // byte order of UTF-8 == code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.list();
    const auto& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i])) continue;
      return Compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  throw TemplateError("'<' not supported between instances of '" + a.TypeName() + "' and '" + b.TypeName() + "'");
}

bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined: return false;
    case Kind::kString:
      if (item.is_undefined()) ThrowUndefined(item);
      if (!item.is_string())
        throw TemplateError("'in <string>' requires string as left operand, not " + item.TypeName());
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList:
    case Kind::kIterator:
      for (const auto& v : container.list())
        if (Equals(v, item)) return true;
      return false;
    case Kind::kDict:
      return item.is_string() && container.dict().Find(item.str()) != nullptr;
    default: throw TemplateError("argument of type '" + container.TypeName() + "' is not iterable");
  }
}

bool CompareOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") return !Contains(b, a);
  int c = Compare(a, b);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  if (op == ">=") return c >= 0;
  throw TemplateError("unknown comparison '" + op + "'");
}

}  // namespace lms::jinja
