#include "core/jinja/interpreter.h"

#include <ctime>
#include <unordered_map>

#include "core/jinja/ops.h"

namespace lms::jinja {
namespace {

constexpr int kMaxMacroDepth = 100;
constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox refuses larger ranges too

enum class Flow { kNormal, kBreak, kContinue };

// Variables of one frame: the template top level, one for-loop iteration, or a macro call.
// Lookups walk to the parent; assignments stay in the frame (jinja2 scoping: a `set` inside a
// loop body is invisible after the iteration).
struct Scope {
  explicit Scope(const Scope* parent_scope) : parent(parent_scope) {}
  const Scope* parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* Find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent)
      for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
        if (it->first == name) return &it->second;
    return nullptr;
  }
  void Set(const std::string& name, Value v) {
    for (auto& [k, existing] : vars) {
      if (k == name) {
        existing = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};

class Interpreter {
 public:
  explicit Interpreter(const RenderOptions& options) : opts_(options) { InstallGlobals(); }

  std::string Run(const NodeList& root, const Value& context) {
    Scope top(nullptr);
    for (const auto& [k, v] : context.dict().items) top.Set(k, v);
    top_ = &top;
    std::string out;
    ExecBody(root, top, out);
    return out;
  }

 private:
  // ---- statements ----

  Flow ExecBody(const NodeList& body, Scope& scope, std::string& out) {
    for (const auto& n : body) {
      Flow f = Exec(*n, scope, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow Exec(const Node& n, Scope& scope, std::string& out) {
    try {
      Step();
      return ExecImpl(n, scope, out);
    } catch (TemplateError& e) {
      if (!e.has_position()) e.set_position(n.line, n.col);
      throw;
    }
  }

  void Step() {
    if (++steps_ > opts_.max_steps) throw TemplateError("template exceeded its evaluation budget (runaway loop?)");
  }

  void Append(std::string& out, const std::string& s) {
    out += s;
    if (out.size() > opts_.max_output_bytes) throw TemplateError("template output exceeds the size limit");
  }

  void BindTargets(Scope& scope, const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
      scope.Set(targets[0], item);
      return;
    }
    std::vector<Value> parts = Iterate(item);
    if (parts.size() != targets.size())
      throw TemplateError(std::string(parts.size() > targets.size() ? "too many" : "not enough") +
                          " values to unpack (expected " + std::to_string(targets.size()) + ", got " +
                          std::to_string(parts.size()) + ")");
    for (size_t i = 0; i < targets.size(); ++i) scope.Set(targets[i], parts[i]);
  }

  Flow ExecImpl(const Node& n, Scope& scope, std::string& out) {
    switch (n.kind) {
      case NodeKind::kText: Append(out, n.text); return Flow::kNormal;
      case NodeKind::kOutput: Append(out, Eval(*n.expr, scope).ToString()); return Flow::kNormal;
      case NodeKind::kIf:
        for (const auto& [cond, body] : n.branches)
          if (Eval(*cond, scope).Truthy()) return ExecBody(body, scope, out);
        return ExecBody(n.else_body, scope, out);
      case NodeKind::kFor: return ExecFor(n, scope, out);
      case NodeKind::kSet: {
        Value v = Eval(*n.expr, scope);
        if (!n.ns_attr.empty()) {
          const Value* target = scope.Find(n.targets[0]);
          if (!target || !target->is_namespace())
            throw TemplateError("cannot assign attribute '" + n.ns_attr + "' on '" + n.targets[0] +
                                "': it is not a namespace()");
          target->namespace_dict().Set(n.ns_attr, std::move(v));
        } else {
          BindTargets(scope, n.targets, v);
        }
        return Flow::kNormal;
      }
      case NodeKind::kSetBlock: {
        std::string body;
        ExecBody(n.body, scope, body);
        Value v = Value::Str(std::move(body));
        if (n.expr) v = EvalWithBlockInput(*n.expr, scope, std::move(v));
        scope.Set(n.targets[0], std::move(v));
        return Flow::kNormal;
      }
      case NodeKind::kFilterBlock: {
        std::string body;
        ExecBody(n.body, scope, body);
        Append(out, EvalWithBlockInput(*n.expr, scope, Value::Str(std::move(body))).ToString());
        return Flow::kNormal;
      }
      case NodeKind::kMacro: {
        const Node* node = &n;
        scope.Set(n.name, Value::MakeFunction(n.name, [this, node](CallArgs& args) { return CallMacro(*node, args); }));
        return Flow::kNormal;
      }
      case NodeKind::kBreak: return Flow::kBreak;
      case NodeKind::kContinue: return Flow::kContinue;
      case NodeKind::kScopeBlock: return ExecBody(n.body, scope, out);
      case NodeKind::kWith: {
        std::vector<Value> values;
        for (const auto& v : n.values) values.push_back(Eval(*v, scope));
        Scope inner(&scope);
        for (size_t i = 0; i < n.targets.size(); ++i) inner.Set(n.targets[i], std::move(values[i]));
        return ExecBody(n.body, inner, out);
      }
    }
    return Flow::kNormal;
  }

  Flow ExecFor(const Node& n, Scope& scope, std::string& out) {
    std::vector<Value> items = Iterate(Eval(*n.expr, scope));
    if (n.filter) {
      // `for x in xs if cond`: filtered before loop.index/length are computed.
      std::vector<Value> kept;
      for (auto& item : items) {
        Scope s(&scope);
        BindTargets(s, n.targets, item);
        if (Eval(*n.filter, s).Truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) return ExecBody(n.else_body, scope, out);
    const int64_t len = static_cast<int64_t>(items.size());
    // One loop.cycle function per loop, reading the current iteration through a shared index.
    auto current = std::make_shared<int64_t>(0);
    Value cycle = Value::MakeFunction("loop.cycle", [current](CallArgs& args) {
      if (args.positional.empty()) throw TemplateError("loop.cycle() needs at least one value");
      return args.positional[static_cast<size_t>(*current) % args.positional.size()];
    });
    // The loop object is rebuilt in place when the previous iteration's copy is gone (the
    // common case); a template that kept a reference to it gets a fresh one.
    static const char* const kLoopKeys[] = {"index", "index0", "revindex", "revindex0", "first", "last",
                                            "length", "depth", "depth0", "previtem", "nextitem", "cycle"};
    std::shared_ptr<Dict> loop;
    for (int64_t i = 0; i < len; ++i) {
      Step();
      *current = i;
      Scope s(&scope);
      BindTargets(s, n.targets, items[static_cast<size_t>(i)]);
      if (!loop || loop.use_count() > 1) {
        loop = std::make_shared<Dict>();
        for (const char* key : kLoopKeys) loop->items.emplace_back(key, Value());
        loop->items[7].second = Value::Int(1);
        loop->items[8].second = Value::Int(0);
        loop->items[11].second = cycle;
      }
      auto& li = loop->items;
      li[0].second = Value::Int(i + 1);
      li[1].second = Value::Int(i);
      li[2].second = Value::Int(len - i);
      li[3].second = Value::Int(len - i - 1);
      li[4].second = Value::Bool(i == 0);
      li[5].second = Value::Bool(i == len - 1);
      li[6].second = Value::Int(len);
      // previtem/nextitem are undefined at the ends, as in jinja2.
      li[9].second = i > 0 ? items[static_cast<size_t>(i - 1)] : Value();
      li[10].second = i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value();
      s.Set("loop", Value::SharedDict(loop));
      Flow f = ExecBody(n.body, s, out);
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  Value CallMacro(const Node& m, CallArgs& args) {
    struct DepthGuard {
      int& d;
      ~DepthGuard() { --d; }
    } guard{++macro_depth_};
    if (macro_depth_ > kMaxMacroDepth) throw TemplateError("macro '" + m.name + "' recursed too deeply");
    const std::string what = "macro '" + m.name + "'";
    if (args.positional.size() > m.params.size())
      throw TemplateError(what + " takes not more than " + std::to_string(m.params.size()) + " argument(s)");
    // Macros see the template's top-level variables (as of the call), not the caller's.
    Scope s(top_);
    std::vector<bool> bound(m.params.size(), false);
    for (size_t i = 0; i < args.positional.size(); ++i) {
      s.Set(m.params[i].name, std::move(args.positional[i]));
      bound[i] = true;
    }
    for (auto& [key, value] : args.keyword) {
      size_t idx = 0;
      while (idx < m.params.size() && m.params[idx].name != key) ++idx;
      if (idx == m.params.size()) throw TemplateError(what + " takes no keyword argument '" + key + "'");
      if (bound[idx]) throw TemplateError(what + " got multiple values for argument '" + key + "'");
      s.Set(key, std::move(value));
      bound[idx] = true;
    }
    for (size_t i = 0; i < m.params.size(); ++i) {
      if (bound[i]) continue;
      const MacroParam& p = m.params[i];
      s.Set(p.name, p.default_value ? Eval(*p.default_value, s)
                                    : Value::Undefined("parameter '" + p.name + "' was not provided"));
    }
    std::string out;
    ExecBody(m.body, s, out);
    return Value::Str(std::move(out));
  }

  // ---- expressions ----

  Value EvalWithBlockInput(const Expr& e, Scope& scope, Value input) {
    Value saved = std::move(block_input_);
    block_input_ = std::move(input);
    Value v = Eval(e, scope);
    block_input_ = std::move(saved);
    return v;
  }

  Value Eval(const Expr& e, Scope& scope) {
    try {
      Step();
      return EvalImpl(e, scope);
    } catch (TemplateError& err) {
      if (!err.has_position()) err.set_position(e.line, e.col);
      throw;
    }
  }

  CallArgs EvalArgs(const Expr& e, Scope& scope) {
    CallArgs args;
    for (const auto& a : e.items) args.positional.push_back(Eval(*a, scope));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, Eval(*v, scope));
    return args;
  }

  Value Lookup(const std::string& name, const Scope& scope) const {
    if (const Value* v = scope.Find(name)) return *v;
    auto it = globals_.find(name);
    if (it != globals_.end()) return it->second;
    return Value::Undefined("'" + name + "' is undefined");
  }

  Value EvalImpl(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case ExprKind::kLiteral: return e.literal;
      case ExprKind::kName: return Lookup(e.name, scope);
      case ExprKind::kList:
      case ExprKind::kTuple: {
        std::vector<Value> items;
        items.reserve(e.items.size());
        for (const auto& i : e.items) items.push_back(Eval(*i, scope));
        return Value::List(std::move(items), e.kind == ExprKind::kTuple);
      }
      case ExprKind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          Value k = Eval(*e.items[i], scope);
          if (!k.is_string()) throw TemplateError("unsupported: dict literal keys must be strings, got " + k.TypeName());
          d.Set(k.str(), Eval(*e.items[i + 1], scope));
        }
        return Value::MakeDict(std::move(d));
      }
      case ExprKind::kGetAttr: return GetAttr(Eval(*e.a, scope), e.name);
      case ExprKind::kGetItem: {
        Value obj = Eval(*e.a, scope);
        return GetItem(obj, Eval(*e.b, scope));
      }
      case ExprKind::kSlice: {
        Value obj = Eval(*e.a, scope);
        Value parts[3];
        for (int i = 0; i < 3; ++i)
          if (e.items[i]) parts[i] = Eval(*e.items[i], scope);
        return SliceValue(obj, parts[0], parts[1], parts[2]);
      }
      case ExprKind::kCall: {
        Value callee = Eval(*e.a, scope);
        CallArgs args = EvalArgs(e, scope);
        if (callee.is_undefined()) ThrowUndefined(callee);
        if (!callee.is_function()) throw TemplateError("'" + callee.TypeName() + "' object is not callable");
        return callee.function().fn(args);
      }
      case ExprKind::kFilter: {
        Value input = e.a ? Eval(*e.a, scope) : block_input_;
        CallArgs args = EvalArgs(e, scope);
        try {
          return ApplyFilter(e.name, input, args);
        } catch (TemplateError& err) {
          if (err.has_position()) throw;
          throw TemplateError("filter '" + e.name + "': " + err.what());
        }
      }
      case ExprKind::kTest: {
        Value v = Eval(*e.a, scope);
        CallArgs args = EvalArgs(e, scope);
        return Value::Bool(ApplyTest(e.name, v, args) != e.negated);
      }
      case ExprKind::kNot: return Value::Bool(!Eval(*e.a, scope).Truthy());
      case ExprKind::kNeg:
      case ExprKind::kPos: {
        Value v = Eval(*e.a, scope);
        if (v.is_undefined()) ThrowUndefined(v);
        if (!v.is_number()) throw TemplateError("bad operand type for unary " + std::string(e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + v.TypeName() + "'");
        if (e.kind == ExprKind::kPos) return v.is_bool() ? Value::Int(v.int_value()) : v;
        return v.is_float() ? Value::Float(-v.number()) : Value::Int(-v.int_value());
      }
      case ExprKind::kBinary: {
        Value a = Eval(*e.a, scope);
        // and/or short-circuit and yield an operand, as in Python.
        if (e.name == "and") return a.Truthy() ? Eval(*e.b, scope) : a;
        if (e.name == "or") return a.Truthy() ? a : Eval(*e.b, scope);
        return BinaryOp(e.name, a, Eval(*e.b, scope));
      }
      case ExprKind::kCompare: {
        Value left = Eval(*e.a, scope);
        for (size_t i = 0; i < e.compare_ops.size(); ++i) {
          Value right = Eval(*e.items[i], scope);
          if (!CompareOp(e.compare_ops[i], left, right)) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case ExprKind::kCondExpr:
        if (Eval(*e.a, scope).Truthy()) return Eval(*e.b, scope);
        if (e.c) return Eval(*e.c, scope);
        return Value::Undefined("the inline if-expression evaluated to false and no else section was defined");
      case ExprKind::kBlockInput: return block_input_;
    }
    throw TemplateError("internal: unknown expression kind");
  }

  // ---- globals ----

  void InstallGlobals() {
    globals_["range"] = Value::MakeFunction("range", [](CallArgs& args) {
      if (!args.keyword.empty()) throw TemplateError("range() takes no keyword arguments");
      std::vector<int64_t> n;
      for (const auto& v : args.positional) {
        if (!v.is_int() && !v.is_bool()) throw TemplateError("range() arguments must be integers, got " + v.TypeName());
        n.push_back(v.int_value());
      }
      if (n.empty() || n.size() > 3) throw TemplateError("range() takes 1 to 3 arguments");
      int64_t start = n.size() > 1 ? n[0] : 0, stop = n.size() > 1 ? n[1] : n[0], step = n.size() > 2 ? n[2] : 1;
      if (step == 0) throw TemplateError("range() arg 3 must not be zero");
      std::vector<Value> out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (static_cast<int64_t>(out.size()) >= kMaxRange) throw TemplateError("range() too big (limit 100000 items)");
        out.push_back(Value::Int(i));
      }
      return Value::List(std::move(out));
    });
    auto make_dict = [](const std::string& what, CallArgs& args) {
      Dict d;
      if (args.positional.size() > 1) throw TemplateError(what + "() takes at most one positional argument");
      if (!args.positional.empty()) {
        const Value& init = args.positional[0];
        if (!init.is_dict() && !init.is_namespace()) throw TemplateError(what + "() argument must be a mapping");
        d = init.dict();
      }
      for (auto& [k, v] : args.keyword) d.Set(k, std::move(v));
      return d;
    };
    globals_["namespace"] = Value::MakeFunction("namespace", [make_dict](CallArgs& args) {
      return Value::MakeNamespace(make_dict("namespace", args));
    });
    globals_["dict"] = Value::MakeFunction("dict", [make_dict](CallArgs& args) {
      return Value::MakeDict(make_dict("dict", args));
    });
    globals_["raise_exception"] = Value::MakeFunction("raise_exception", [](CallArgs& args) -> Value {
      std::string msg = args.positional.empty() ? std::string("(no message)") : args.positional[0].ToString();
      throw TemplateError("raise_exception: " + msg);
    });
    globals_["strftime_now"] = Value::MakeFunction("strftime_now", [this](CallArgs& args) {
      auto a = BindArgs("strftime_now", args, {"format"});
      if (!a[0] || !a[0]->is_string()) throw TemplateError("strftime_now() needs a format string");
      std::tm tm{};
      if (opts_.now) {
        tm = *opts_.now;
      } else {
        std::time_t t = std::time(nullptr);
        localtime_r(&t, &tm);
      }
      char buf[512];
      size_t n = std::strftime(buf, sizeof(buf), a[0]->str().c_str(), &tm);
      return Value::Str(std::string(buf, n));
    });
  }

  RenderOptions opts_;
  std::unordered_map<std::string, Value> globals_;
  const Scope* top_ = nullptr;
  Value block_input_;
  uint64_t steps_ = 0;
  int macro_depth_ = 0;
};

}  // namespace

std::string RenderProgram(const NodeList& root, const Value& context, const RenderOptions& options) {
  return Interpreter(options).Run(root, context);
}

}  // namespace lms::jinja
