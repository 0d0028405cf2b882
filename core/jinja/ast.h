// Syntax tree of a parsed template: expressions (Expr) and statements (Node).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/jinja/value.h"

namespace lms::jinja {

struct Expr;
struct Node;
using ExprPtr = std::unique_ptr<Expr>;
using NodePtr = std::unique_ptr<Node>;
using NodeList = std::vector<NodePtr>;

enum class ExprKind {
  kLiteral,     // literal
  kName,        // name
  kList,        // items
  kTuple,       // items
  kDict,        // keys (items[2k]) and values (items[2k+1])
  kGetAttr,     // a.name
  kGetItem,     // a[b]
  kSlice,       // a[b:c:d]; absent parts are null
  kCall,        // a(args, kwargs)
  kFilter,      // a | name(args, kwargs); a is null for the input of a filter block
  kTest,        // a is [not] name(args)  (negated)
  kNot,         // not a
  kNeg,         // -a
  kPos,         // +a
  kBinary,      // a op b, op in name: + - * / // % ** ~ and or
  kCompare,     // a op1 b op2 c…: ops in compare_ops, operands in items
  kCondExpr,    // b if a else c (c may be null)
  kBlockInput,  // placeholder for the rendered body of {% filter %} / {% set x | f %}
};

struct Expr {
  ExprKind kind;
  int line = 0;
  int col = 0;
  std::string name;
  Value literal;
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;                             // list/tuple/dict items, positional args
  std::vector<std::pair<std::string, ExprPtr>> kwargs;    // keyword args of calls/filters/tests
  std::vector<std::string> compare_ops;                   // "==", "!=", "<", "<=", ">", ">=", "in", "notin"
};

enum class NodeKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // branches (cond, body) + else_body
  kFor,       // targets in expr [if filter] body [else else_body]
  kSet,       // targets = expr, or ns_attr: targets[0].name = expr
  kSetBlock,  // targets[0] = rendered body, piped through expr (a filter chain) if set
  kMacro,     // name(params) body
  kFilterBlock,
  kBreak,
  kContinue,
  kScopeBlock,  // body rendered in place (e.g. {% generation %})
  kWith,        // targets[i] = values[i] in a new scope around body
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Node {
  NodeKind kind;
  int line = 0;
  int col = 0;
  std::string text;
  ExprPtr expr;    // output / set value / for iterable / filter chain
  ExprPtr filter;  // for … if filter
  std::vector<std::pair<ExprPtr, NodeList>> branches;
  NodeList body;
  NodeList else_body;
  std::vector<std::string> targets;
  std::vector<ExprPtr> values;  // {% with %} values, parallel to targets
  std::string ns_attr;  // set ns.attr = …
  std::string name;     // macro name
  std::vector<MacroParam> params;
};

}  // namespace lms::jinja
