// jinja2's builtin filters and tests (the subset chat templates use), with HF's `tojson`
// (json.dumps with ensure_ascii=False) in place of jinja2's HTML-safe one.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "core/jinja/ops.h"
#include "core/jinja/parser.h"
#include "core/jinja/string_util.h"

namespace lms::jinja {
namespace {

const std::unordered_set<std::string>& FilterNames() {
  static const std::unordered_set<std::string> kNames = {
      "abs",    "attr",  "capitalize", "count",     "d",      "default", "dictsort", "e",       "escape", "format",
      "first",  "float", "indent",     "int",       "items",  "join",    "last",     "length",  "list",
      "lower",  "map",   "max",        "min",       "reject", "rejectattr", "replace", "reverse", "round",
      "safe",   "select", "selectattr", "sort",     "string", "sum",     "title",    "tojson",  "trim",
      "unique", "upper", "wordcount"};
  return kNames;
}

const std::unordered_set<std::string>& TestNames() {
  static const std::unordered_set<std::string> kNames = {
      "boolean", "callable", "defined", "divisibleby", "eq",       "equalto", "==",     "escaped",
      "even",    "false",    "float",   "ge",          ">=",       "gt",      "greaterthan", ">",
      "in",      "integer",  "iterable", "le",         "<=",       "lower",   "lt",     "lessthan",
      "<",       "mapping",  "ne",      "!=",          "none",     "number",  "odd",    "sameas",
      "sequence", "string",  "true",    "undefined",   "upper"};
  return kNames;
}

// Value of item.attr.sub (jinja2's make_attrgetter: getitem per dotted part, integers index).
Value AttrPath(const Value& item, const std::string& path) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = GetItem(cur, digits ? Value::Int(std::stoll(part)) : Value::Str(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

std::string RequireStr(const std::string& what, const Value& v) {
  if (v.is_undefined()) ThrowUndefined(v);
  if (!v.is_string()) throw TemplateError(what + ": expected a string, got " + v.TypeName());
  return v.str();
}

// A string result that stays Markup when its input was.
Value SameStringKind(const Value& input, std::string s) {
  return input.is_markup() ? Value::Markup(std::move(s)) : Value::Str(std::move(s));
}

Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::Str(AsciiLower(v.str()));
  return v;
}

int64_t Length(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(Utf8Length(v.str()));
    case Kind::kList: return static_cast<int64_t>(v.list().size());
    case Kind::kDict:
    case Kind::kNamespace: return static_cast<int64_t>(v.dict().items.size());
    default: throw TemplateError("object of type '" + v.TypeName() + "' has no len()");
  }
}

// Positional args after the first `skip` as a new CallArgs (for map/select's forwarded args).
CallArgs RestArgs(const CallArgs& args, size_t skip) {
  CallArgs rest;
  for (size_t i = skip; i < args.positional.size(); ++i) rest.positional.push_back(args.positional[i]);
  rest.keyword = args.keyword;
  return rest;
}

bool RunTest(const std::string& name, const Value& v, const CallArgs& args) {
  CallArgs copy = args;
  return ApplyTest(name, v, copy);
}

Value SelectOrReject(const std::string& name, const Value& input, CallArgs& args) {
  const bool by_attr = name == "selectattr" || name == "rejectattr";
  const bool select = name == "select" || name == "selectattr";
  std::string attr;
  size_t next = 0;
  if (by_attr) {
    if (args.positional.empty()) throw TemplateError(name + ": missing attribute name");
    attr = RequireStr(name, args.positional[0]);
    next = 1;
  }
  std::string test;
  if (args.positional.size() > next) test = RequireStr(name, args.positional[next]);
  if (!test.empty() && !IsKnownTest(test)) throw TemplateError(name + ": unsupported test '" + test + "'");
  CallArgs test_args = RestArgs(args, next + 1);
  std::vector<Value> out;
  if (!input.Truthy()) return Value::Iterator({});  // jinja2 guards with `if value:`
  for (const Value& item : Iterate(input)) {
    Value subject = by_attr ? AttrPath(item, attr) : item;
    bool ok = test.empty() ? subject.Truthy() : RunTest(test, subject, test_args);
    if (ok == select) out.push_back(item);
  }
  return Value::Iterator(std::move(out));
}

Value MapFilter(const Value& input, CallArgs& args) {
  std::vector<Value> out;
  if (!input.Truthy()) return Value::Iterator({});  // jinja2 guards with `if value:`
  for (const auto& [k, v] : args.keyword) {
    if (k != "attribute" && k != "default") throw TemplateError("map: unexpected keyword argument '" + k + "'");
  }
  const Value* attribute = nullptr;
  const Value* default_value = nullptr;
  for (const auto& [k, v] : args.keyword) (k == "attribute" ? attribute : default_value) = &v;
  if (attribute) {
    std::string path = RequireStr("map", *attribute);
    for (const Value& item : Iterate(input)) {
      Value v = AttrPath(item, path);
      if (v.is_undefined() && default_value) v = *default_value;
      out.push_back(std::move(v));
    }
    return Value::Iterator(std::move(out));
  }
  if (args.positional.empty()) throw TemplateError("map: needs a filter name or attribute=");
  std::string filter = RequireStr("map", args.positional[0]);
  if (!IsKnownFilter(filter)) throw TemplateError("map: unsupported filter '" + filter + "'");
  for (const Value& item : Iterate(input)) {
    CallArgs rest = RestArgs(args, 1);
    out.push_back(ApplyFilter(filter, item, rest));
  }
  return Value::Iterator(std::move(out));
}

Value Indent(const Value& input, CallArgs& args) {
  auto a = BindArgs("indent", args, {"width", "first", "blank"});
  std::string indention = "    ";
  if (a[0]) indention = a[0]->is_string() ? a[0]->str() : std::string(static_cast<size_t>(std::max<int64_t>(0, a[0]->int_value())), ' ');
  bool first = a[1] && a[1]->Truthy();
  bool blank = a[2] && a[2]->Truthy();
  // jinja2 appends "\n" before splitting so a trailing newline does not leave an indented
  // empty last line.
  std::vector<std::string> lines = SplitLines(input.ToString() + "\n");
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv.append("\n").append(indention);
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += '\n';
      if (!lines[i].empty()) rv.append(indention).append(lines[i]);
    }
  }
  if (first) rv = indention + rv;
  return SameStringKind(input, rv);
}

Value ToJson(const Value& input, CallArgs& args) {
  auto a = BindArgs("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  if (a[0]) o.ensure_ascii = a[0]->Truthy();
  if (a[1] && !a[1]->is_none()) {
    if (!a[1]->is_int()) throw TemplateError("tojson: indent must be an integer");
    o.indent = static_cast<int>(std::max<int64_t>(0, a[1]->int_value()));
  }
  if (a[2] && !a[2]->is_none()) {
    if (!a[2]->is_list() || a[2]->list().size() != 2) throw TemplateError("tojson: separators must be a pair");
    o.item_separator = RequireStr("tojson", a[2]->list()[0]);
    o.key_separator = RequireStr("tojson", a[2]->list()[1]);
    o.custom_item_separator = true;
  }
  if (a[3]) o.sort_keys = a[3]->Truthy();
  return Value::Str(DumpJson(input, o));
}

Value Round(const Value& input, CallArgs& args) {
  auto a = BindArgs("round", args, {"precision", "method"});
  int64_t precision = a[0] ? a[0]->int_value() : 0;
  std::string method = a[1] ? RequireStr("round", *a[1]) : "common";
  if (input.is_undefined()) ThrowUndefined(input);
  if (!input.is_number()) throw TemplateError("round: expected a number, got " + input.TypeName());
  if (method == "common" && !input.is_float()) return Value::Int(input.int_value());  // round(int, n) is int
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = input.number() * scale;
  double r;
  if (method == "common") r = std::nearbyint(x);  // Python rounds half to even
  else if (method == "floor") r = std::floor(x);
  else if (method == "ceil") r = std::ceil(x);
  else throw TemplateError("round: method must be 'common', 'ceil' or 'floor'");
  return Value::Float(r / scale);
}

Value SortFilter(const Value& input, CallArgs& args) {
  auto a = BindArgs("sort", args, {"reverse", "case_sensitive", "attribute"});
  bool reverse = a[0] && a[0]->Truthy();
  bool case_sensitive = a[1] && a[1]->Truthy();
  std::string attr = a[2] && !a[2]->is_none() ? RequireStr("sort", *a[2]) : "";
  std::vector<Value> items = Iterate(input);
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& v : items) keyed.emplace_back(SortKey(attr.empty() ? v : AttrPath(v, attr), case_sensitive), v);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? Compare(y.first, x.first) < 0 : Compare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::List(std::move(out));
}

Value DictSort(const Value& input, CallArgs& args) {
  auto a = BindArgs("dictsort", args, {"case_sensitive", "by", "reverse"});
  if (!input.is_dict()) throw TemplateError("dictsort: expected a mapping, got " + input.TypeName());
  bool case_sensitive = a[0] && a[0]->Truthy();
  std::string by = a[1] ? RequireStr("dictsort", *a[1]) : "key";
  bool reverse = a[2] && a[2]->Truthy();
  if (by != "key" && by != "value") throw TemplateError("dictsort: 'by' must be 'key' or 'value'");
  std::vector<Value> pairs;
  for (const auto& [k, v] : input.dict().items) pairs.push_back(Value::List({Value::Str(k), v}, true));
  size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    int c = Compare(SortKey(x.list()[idx], case_sensitive), SortKey(y.list()[idx], case_sensitive));
    return reverse ? c > 0 : c < 0;
  });
  return Value::List(std::move(pairs));
}

Value Unique(const Value& input, CallArgs& args) {
  auto a = BindArgs("unique", args, {"case_sensitive", "attribute"});
  bool case_sensitive = a[0] && a[0]->Truthy();
  std::string attr = a[1] && !a[1]->is_none() ? RequireStr("unique", *a[1]) : "";
  std::vector<Value> seen, out;
  for (const Value& v : Iterate(input)) {
    Value key = SortKey(attr.empty() ? v : AttrPath(v, attr), case_sensitive);
    bool dup = false;
    for (const auto& s : seen) dup = dup || Equals(s, key);
    if (dup) continue;
    seen.push_back(key);
    out.push_back(v);
  }
  return Value::Iterator(std::move(out));
}

Value MinMax(const std::string& name, const Value& input, CallArgs& args) {
  auto a = BindArgs(name, args, {"case_sensitive", "attribute"});
  bool case_sensitive = a[0] && a[0]->Truthy();
  std::string attr = a[1] && !a[1]->is_none() ? RequireStr(name, *a[1]) : "";
  std::vector<Value> items = Iterate(input);
  if (items.empty()) return Value::Undefined("no " + name + " item, sequence was empty");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    Value ki = SortKey(attr.empty() ? items[i] : AttrPath(items[i], attr), case_sensitive);
    Value kb = SortKey(attr.empty() ? items[best] : AttrPath(items[best], attr), case_sensitive);
    int c = Compare(ki, kb);
    if (name == "min" ? c < 0 : c > 0) best = i;
  }
  return items[best];
}

int64_t WordCount(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    bool word = c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
    if (word && !in_word) ++n;
    in_word = word;
  }
  return n;
}

// Python's `fmt % args` (what jinja2's `format` filter does): %s %r %d %i %f %F %e %E %g %G
// %x %X %o %c %% with flags, width and precision; %(name)s with keyword arguments.
std::string PercentFormat(const std::string& fmt, const std::vector<Value>& args, const Dict* named) {
  std::string out;
  size_t next_arg = 0;
  auto take = [&](const std::string& key) -> const Value& {
    if (!key.empty()) {
      const Value* v = named ? named->Find(key) : nullptr;
      if (!v) throw TemplateError("format: missing key '" + key + "'");
      return *v;
    }
    if (next_arg >= args.size()) throw TemplateError("format: not enough arguments for format string");
    return args[next_arg++];
  };
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    size_t j = i + 1;
    std::string key;
    if (j < fmt.size() && fmt[j] == '(') {
      size_t close = fmt.find(')', j);
      if (close == std::string::npos) throw TemplateError("format: incomplete format key");
      key = fmt.substr(j + 1, close - j - 1);
      j = close + 1;
    }
    std::string spec = "%";
    while (j < fmt.size() && std::string_view("-+ #0").find(fmt[j]) != std::string_view::npos) spec += fmt[j++];
    while (j < fmt.size() && ((fmt[j] >= '0' && fmt[j] <= '9') || fmt[j] == '.')) spec += fmt[j++];
    if (j >= fmt.size()) throw TemplateError("format: incomplete format");
    char type = fmt[j];
    i = j;
    if (type == '%') {
      out += '%';
      continue;
    }
    const Value& v = take(key);
    char buf[512];
    if (type == 's' || type == 'r') {
      std::string text = type == 's' ? v.ToString() : v.Repr();
      size_t dot = spec.find('.');
      if (dot != std::string::npos) text = text.substr(0, std::stoul("0" + spec.substr(dot + 1)));
      bool left = spec.find('-') != std::string::npos;
      std::string width_digits;
      for (size_t k = 1; k < (dot == std::string::npos ? spec.size() : dot); ++k)
        if (spec[k] >= '0' && spec[k] <= '9' && !(width_digits.empty() && spec[k] == '0')) width_digits += spec[k];
      size_t width = width_digits.empty() ? 0 : std::stoul(width_digits);
      size_t len = Utf8Length(text);
      if (len < width) text = left ? text + std::string(width - len, ' ') : std::string(width - len, ' ') + text;
      out += text;
      continue;
    }
    if (!v.is_number()) throw TemplateError("format: %" + std::string(1, type) + " format: a number is required, not " + v.TypeName());
    if (type == 'd' || type == 'i' || type == 'x' || type == 'X' || type == 'o' || type == 'c') {
      long long n = v.is_float() ? static_cast<long long>(std::trunc(v.number())) : v.int_value();
      std::snprintf(buf, sizeof(buf), (spec + "ll" + (type == 'i' ? 'd' : type)).c_str(), n);
    } else if (std::string_view("fFeEgG").find(type) != std::string_view::npos) {
      std::snprintf(buf, sizeof(buf), (spec + type).c_str(), v.number());
    } else {
      throw TemplateError(std::string("format: unsupported format character '") + type + "'");
    }
    out += buf;
  }
  if (next_arg < args.size() && !named) throw TemplateError("format: not all arguments converted during string formatting");
  return out;
}

}  // namespace

bool IsKnownFilter(const std::string& name) { return FilterNames().count(name) != 0; }
bool IsKnownTest(const std::string& name) { return TestNames().count(name) != 0; }

Value ApplyFilter(const std::string& name, const Value& input, CallArgs& args) {
  auto no_args = [&]() { BindArgs(name, args, {}); };
  if (name == "safe") return no_args(), input.is_markup() ? input : Value::Markup(input.ToString());
  if (name == "e" || name == "escape") {
    no_args();
    return input.is_markup() ? input : Value::Markup(HtmlEscape(input.ToString()));
  }
  if (name == "string") return no_args(), input.is_string() ? input : Value::Str(input.ToString());
  if (name == "trim") {
    auto a = BindArgs(name, args, {"chars"});
    std::optional<std::string> chars;
    if (a[0] && !a[0]->is_none()) chars = RequireStr(name, *a[0]);
    return SameStringKind(input, StripString(input.ToString(), chars, true, true));
  }
  if (name == "upper") return no_args(), SameStringKind(input, AsciiUpper(input.ToString()));
  if (name == "lower") return no_args(), SameStringKind(input, AsciiLower(input.ToString()));
  if (name == "title") return no_args(), SameStringKind(input, JinjaTitle(input.ToString()));
  if (name == "capitalize") return no_args(), SameStringKind(input, Capitalize(input.ToString()));
  if (name == "length" || name == "count") return no_args(), Value::Int(Length(input));
  if (name == "wordcount") return no_args(), Value::Int(WordCount(input.ToString()));
  if (name == "d" || name == "default") {
    auto a = BindArgs(name, args, {"default_value", "boolean"});
    bool boolean = a[1] && a[1]->Truthy();
    if (input.is_undefined() || (boolean && !input.Truthy())) return a[0] ? *a[0] : Value::Str("");
    return input;
  }
  if (name == "tojson") return ToJson(input, args);
  if (name == "format") {
    if (!args.positional.empty() && !args.keyword.empty())
      throw TemplateError("format: can't handle positional and keyword arguments at the same time");
    Dict named;
    for (auto& [k, v] : args.keyword) named.Set(k, v);
    // A single mapping argument formats %(key)s like Python's `s % dict`.
    if (args.positional.size() == 1 && args.positional[0].is_dict())
      return Value::Str(PercentFormat(input.ToString(), {}, &args.positional[0].dict()));
    return Value::Str(PercentFormat(input.ToString(), args.positional, args.keyword.empty() ? nullptr : &named));
  }
  if (name == "join") {
    auto a = BindArgs(name, args, {"d", "attribute"});
    std::string sep = a[0] ? a[0]->ToString() : "";
    std::string attr = a[1] && !a[1]->is_none() ? RequireStr(name, *a[1]) : "";
    std::string out;
    bool first = true;
    for (const Value& v : Iterate(input)) {
      if (!first) out += sep;
      first = false;
      out += (attr.empty() ? v : AttrPath(v, attr)).ToString();
    }
    return Value::Str(std::move(out));
  }
  if (name == "first" || name == "last") {
    no_args();
    if (name == "last" && input.is_iterator()) throw TemplateError("'generator' object is not reversible");
    std::vector<Value> items = Iterate(input);
    if (items.empty()) return Value::Undefined("no " + name + " item, sequence was empty");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return no_args(), Value::List(Iterate(input));
  if (name == "items") {
    no_args();
    if (input.is_undefined()) return Value::Iterator({});
    if (!input.is_dict()) throw TemplateError("items: can only get item pairs from a mapping, got " + input.TypeName());
    std::vector<Value> out;
    for (const auto& [k, v] : input.dict().items) out.push_back(Value::List({Value::Str(k), v}, true));
    return Value::Iterator(std::move(out));
  }
  if (name == "reverse") {
    no_args();
    if (input.is_string()) return SliceValue(input, Value::None(), Value::None(), Value::Int(-1));
    // reversed() for sequences; generators are materialized into a reversed list.
    std::vector<Value> items = Iterate(input);
    std::reverse(items.begin(), items.end());
    return input.is_iterator() ? Value::List(std::move(items)) : Value::Iterator(std::move(items));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return SelectOrReject(name, input, args);
  if (name == "map") return MapFilter(input, args);
  if (name == "attr") {
    auto a = BindArgs(name, args, {"name"});
    if (!a[0]) throw TemplateError("attr: missing attribute name");
    // Python getattr only: a dict's keys are not attributes.
    std::string attr_name = RequireStr(name, *a[0]);
    if (input.is_dict() && attr_name != "items" && attr_name != "keys" && attr_name != "values" && attr_name != "get")
      return Value::Undefined("'dict object' has no attribute '" + attr_name + "'");
    return GetAttr(input, attr_name);
  }
  if (name == "replace") {
    auto a = BindArgs(name, args, {"old", "new", "count"});
    if (!a[0] || !a[1]) throw TemplateError("replace: needs old and new strings");
    int64_t count = a[2] && !a[2]->is_none() ? a[2]->int_value() : -1;
    std::string old_s = a[0]->ToString(), new_s = a[1]->ToString();
    if (input.is_markup()) {
      if (!a[0]->is_markup()) old_s = HtmlEscape(old_s);
      if (!a[1]->is_markup()) new_s = HtmlEscape(new_s);
    }
    return SameStringKind(input, ReplaceString(input.ToString(), old_s, new_s, count));
  }
  if (name == "indent") return Indent(input, args);
  if (name == "int" || name == "float") {
    auto a = BindArgs(name, args, {"default", "base"});
    Value fallback = a[0] ? *a[0] : (name == "int" ? Value::Int(0) : Value::Float(0.0));
    double d;
    if (input.is_number()) {
      d = input.number();
      if (name == "int" && !input.is_float()) return Value::Int(input.int_value());
    } else if (input.is_string()) {
      std::string s = StripString(input.str(), std::nullopt, true, true);
      char* end = nullptr;
      if (name == "int" && a[1] && !a[1]->is_none()) {
        int64_t v = std::strtoll(s.c_str(), &end, static_cast<int>(a[1]->int_value()));
        if (s.empty() || *end) return fallback;
        return Value::Int(v);
      }
      d = std::strtod(s.c_str(), &end);
      if (s.empty() || *end) return fallback;
    } else {
      return fallback;
    }
    if (name == "float") return Value::Float(d);
    if (!std::isfinite(d)) return fallback;
    return Value::Int(static_cast<int64_t>(std::trunc(d)));
  }
  if (name == "abs") {
    no_args();
    if (input.is_float()) return Value::Float(std::fabs(input.number()));
    if (input.is_int() || input.is_bool()) return Value::Int(std::llabs(input.int_value()));
    if (input.is_undefined()) ThrowUndefined(input);
    throw TemplateError("bad operand type for abs(): '" + input.TypeName() + "'");
  }
  if (name == "round") return Round(input, args);
  if (name == "sort") return SortFilter(input, args);
  if (name == "dictsort") return DictSort(input, args);
  if (name == "unique") return Unique(input, args);
  if (name == "min" || name == "max") return MinMax(name, input, args);
  if (name == "sum") {
    auto a = BindArgs(name, args, {"attribute", "start"});
    std::string attr = a[0] && !a[0]->is_none() ? RequireStr(name, *a[0]) : "";
    Value total = a[1] ? *a[1] : Value::Int(0);
    for (const Value& v : Iterate(input)) total = BinaryOp("+", total, attr.empty() ? v : AttrPath(v, attr));
    return total;
  }
  throw TemplateError("unsupported filter '" + name + "'");
}

bool ApplyTest(const std::string& name, const Value& v, CallArgs& args) {
  auto arg = [&](const char* param) -> Value {
    auto a = BindArgs(name, args, {param});
    if (!a[0]) throw TemplateError("test '" + name + "' needs an argument");
    return *a[0];
  };
  auto no_args = [&]() { BindArgs(name, args, {}); };
  if (name == "defined") return no_args(), !v.is_undefined();
  if (name == "undefined") return no_args(), v.is_undefined();
  if (name == "none") return no_args(), v.is_none();
  if (name == "boolean") return no_args(), v.is_bool();
  if (name == "true") return no_args(), v.is_bool() && v.bool_value();
  if (name == "false") return no_args(), v.is_bool() && !v.bool_value();
  if (name == "string") return no_args(), v.is_string();
  if (name == "number") return no_args(), v.is_number();
  if (name == "integer") return no_args(), v.is_int();
  if (name == "float") return no_args(), v.is_float();
  if (name == "mapping") return no_args(), v.is_dict();
  if (name == "callable") return no_args(), v.is_function();
  if (name == "escaped") return no_args(), v.is_markup();
  // Python iter() / len()+getitem succeed on these (Undefined defines __iter__ and __len__).
  if (name == "iterable") return no_args(), v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() || v.is_iterator();
  if (name == "sequence") return no_args(), v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
  if (name == "lower") return no_args(), AsciiClassify(v.ToString(), "islower");
  if (name == "upper") return no_args(), AsciiClassify(v.ToString(), "isupper");
  if (name == "even" || name == "odd") {
    no_args();
    if (!v.is_int() && !v.is_bool()) throw TemplateError("test '" + name + "' needs an integer, got " + v.TypeName());
    bool even = v.int_value() % 2 == 0;
    return name == "even" ? even : !even;
  }
  if (name == "divisibleby") {
    Value n = arg("num");
    return Equals(BinaryOp("%", v, n), Value::Int(0));
  }
  if (name == "eq" || name == "equalto" || name == "==") return Equals(v, arg("other"));
  if (name == "ne" || name == "!=") return !Equals(v, arg("other"));
  if (name == "lt" || name == "lessthan" || name == "<") return Compare(v, arg("other")) < 0;
  if (name == "le" || name == "<=") return Compare(v, arg("other")) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return Compare(v, arg("other")) > 0;
  if (name == "ge" || name == ">=") return Compare(v, arg("other")) >= 0;
  if (name == "in") return Contains(arg("seq"), v);
  if (name == "sameas") {
    Value other = arg("other");
    if (v.is_list() && other.is_list()) return &v.list() == &other.list();
    if ((v.is_dict() || v.is_namespace()) && other.kind() == v.kind()) return &v.dict() == &other.dict();
    if (v.kind() != other.kind()) return false;
    return Equals(v, other);
  }
  throw TemplateError("unsupported test '" + name + "'");
}

}  // namespace lms::jinja
