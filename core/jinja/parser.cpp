#include "core/jinja/parser.h"

#include <initializer_list>

namespace lms::jinja {
namespace {

constexpr int kMaxNesting = 200;  // expression / block nesting, to bound recursion

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  NodeList ParseTemplate() {
    NodeList body = ParseBody({});
    if (Cur().type != TokenType::kEof) FailAt(Cur(), "unexpected tag");
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& Next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool IsOp(const Token& t, const char* op) const { return t.type == TokenType::kOperator && t.text == op; }
  bool IsName(const Token& t, const char* name) const { return t.type == TokenType::kName && t.text == name; }
  bool SkipOp(const char* op) {
    if (!IsOp(Cur(), op)) return false;
    Next();
    return true;
  }
  bool SkipName(const char* name) {
    if (!IsName(Cur(), name)) return false;
    Next();
    return true;
  }
  [[noreturn]] void FailAt(const Token& t, const std::string& what) const { throw TemplateError(what, t.line, t.col); }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case TokenType::kData: return "template text";
      case TokenType::kVarBegin: return "'{{'";
      case TokenType::kVarEnd: return "'}}'";
      case TokenType::kBlockBegin: return "'{%'";
      case TokenType::kBlockEnd: return "'%}'";
      case TokenType::kName: return "'" + t.text + "'";
      case TokenType::kString: return "string literal";
      case TokenType::kInteger:
      case TokenType::kFloat: return "number '" + t.text + "'";
      case TokenType::kOperator: return "'" + t.text + "'";
      case TokenType::kEof: return "end of template";
    }
    return "token";
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op)) FailAt(Cur(), std::string("expected '") + op + "', got " + Describe(Cur()));
  }
  std::string ExpectName() {
    if (Cur().type != TokenType::kName) FailAt(Cur(), "expected a name, got " + Describe(Cur()));
    return Next().text;
  }
  void ExpectBlockEnd() {
    if (Cur().type != TokenType::kBlockEnd) FailAt(Cur(), "expected '%}', got " + Describe(Cur()));
    Next();
  }

  ExprPtr MakeExpr(ExprKind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  struct DepthGuard {
    Parser* p;
    explicit DepthGuard(Parser* parser, const Token& at) : p(parser) {
      if (++p->depth_ > kMaxNesting) p->FailAt(at, "template nested too deeply");
    }
    ~DepthGuard() { --p->depth_; }
  };

  // ---- statements ----

  // Parses nodes until EOF or a block tag whose name is in `end_names` (left unconsumed:
  // the cursor stays on that tag's name token).
  NodeList ParseBody(std::initializer_list<const char*> end_names) {
    NodeList body;
    while (true) {
      const Token& t = Cur();
      if (t.type == TokenType::kEof) {
        if (end_names.size() != 0) {
          std::string expected;
          for (const char* n : end_names) expected += (expected.empty() ? "'" : " or '") + std::string(n) + "'";
          FailAt(t, "unexpected end of template: expected " + expected);
        }
        return body;
      }
      if (t.type == TokenType::kData) {
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kText;
        n->text = t.text;
        n->line = t.line;
        n->col = t.col;
        body.push_back(std::move(n));
        Next();
      } else if (t.type == TokenType::kVarBegin) {
        Next();
        auto n = std::make_unique<Node>();
        n->kind = NodeKind::kOutput;
        n->line = t.line;
        n->col = t.col;
        n->expr = ParseTuple(true, {});
        if (Cur().type != TokenType::kVarEnd) FailAt(Cur(), "expected '}}', got " + Describe(Cur()));
        Next();
        body.push_back(std::move(n));
      } else if (t.type == TokenType::kBlockBegin) {
        const Token& name = Peek();
        if (name.type != TokenType::kName) FailAt(name, "expected a statement name after '{%'");
        for (const char* end : end_names) {
          if (name.text == end) {
            Next();  // leave the cursor on the name
            return body;
          }
        }
        Next();
        body.push_back(ParseStatement());
      } else {
        FailAt(t, "unexpected " + Describe(t));
      }
    }
  }

  NodePtr NewNode(NodeKind kind, const Token& at) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = at.line;
    n->col = at.col;
    return n;
  }

  NodePtr ParseStatement() {
    const Token tag = Next();  // the statement name
    DepthGuard guard(this, tag);
    const std::string& s = tag.text;
    if (s == "if") return ParseIf(tag);
    if (s == "for") return ParseFor(tag);
    if (s == "set") return ParseSet(tag);
    if (s == "macro") return ParseMacro(tag);
    if (s == "filter") return ParseFilterBlock(tag);
    if (s == "break" || s == "continue") {
      if (loop_depth_ == 0) FailAt(tag, "'" + s + "' outside of a loop");
      ExpectBlockEnd();
      return NewNode(s == "break" ? NodeKind::kBreak : NodeKind::kContinue, tag);
    }
    if (s == "with") return ParseWith(tag);
    if (s == "generation") {  // HF's AssistantTracker marks assistant text; renders its body
      ExpectBlockEnd();
      auto n = NewNode(NodeKind::kScopeBlock, tag);
      n->body = ParseBody({"endgeneration"});
      Next();
      ExpectBlockEnd();
      return n;
    }
    if (s.rfind("end", 0) == 0 || s == "elif" || s == "else")
      FailAt(tag, "unexpected '" + s + "' (no matching block is open)");
    FailAt(tag, "unsupported tag '" + s + "'");
  }

  NodePtr ParseIf(const Token& tag) {
    auto n = NewNode(NodeKind::kIf, tag);
    ExprPtr cond = ParseTuple(false, {});
    ExpectBlockEnd();
    while (true) {
      NodeList body = ParseBody({"elif", "else", "endif"});
      n->branches.emplace_back(std::move(cond), std::move(body));
      const Token kw = Next();
      if (kw.text == "elif") {
        cond = ParseTuple(false, {});
        ExpectBlockEnd();
        continue;
      }
      if (kw.text == "else") {
        ExpectBlockEnd();
        n->else_body = ParseBody({"endif"});
        Next();
      }
      ExpectBlockEnd();
      return n;
    }
  }

  NodePtr ParseFor(const Token& tag) {
    auto n = NewNode(NodeKind::kFor, tag);
    // Targets: name or name, name… (optionally parenthesized).
    bool paren = SkipOp("(");
    do {
      n->targets.push_back(ExpectName());
    } while (SkipOp(",") && Cur().type == TokenType::kName);
    if (paren) ExpectOp(")");
    if (!SkipName("in")) FailAt(Cur(), "expected 'in' in for loop, got " + Describe(Cur()));
    n->expr = ParseTuple(false, {"recursive"});
    if (IsName(Cur(), "recursive")) FailAt(Cur(), "unsupported: recursive for loops");
    if (SkipName("if")) n->filter = ParseExpression(true);
    ExpectBlockEnd();
    ++loop_depth_;
    n->body = ParseBody({"else", "endfor"});
    --loop_depth_;
    if (Next().text == "else") {
      ExpectBlockEnd();
      n->else_body = ParseBody({"endfor"});
      Next();
    }
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseSet(const Token& tag) {
    auto n = NewNode(NodeKind::kSet, tag);
    n->targets.push_back(ExpectName());
    if (SkipOp(".")) {
      n->ns_attr = ExpectName();
    } else {
      while (SkipOp(",")) n->targets.push_back(ExpectName());
    }
    if (SkipOp("=")) {
      n->expr = ParseTuple(true, {});
      ExpectBlockEnd();
      return n;
    }
    // Block set: {% set x %}…{% endset %}, optionally {% set x | filter %}.
    if (!n->ns_attr.empty() || n->targets.size() != 1) FailAt(tag, "block set needs a single plain name");
    n->kind = NodeKind::kSetBlock;
    if (IsOp(Cur(), "|")) n->expr = ParseFilterChain(MakeExpr(ExprKind::kBlockInput, Cur()));
    ExpectBlockEnd();
    n->body = ParseBody({"endset"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  // {% with a = expr, b = expr %}…{% endwith %}: values are evaluated in the enclosing scope,
  // the names live only inside the block.
  NodePtr ParseWith(const Token& tag) {
    auto n = NewNode(NodeKind::kWith, tag);
    while (Cur().type != TokenType::kBlockEnd) {
      if (!n->targets.empty()) ExpectOp(",");
      n->targets.push_back(ExpectName());
      ExpectOp("=");
      n->values.push_back(ParseExpression(true));
    }
    ExpectBlockEnd();
    n->body = ParseBody({"endwith"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseMacro(const Token& tag) {
    auto n = NewNode(NodeKind::kMacro, tag);
    n->name = ExpectName();
    ExpectOp("(");
    while (!IsOp(Cur(), ")")) {
      if (!n->params.empty()) ExpectOp(",");
      if (IsOp(Cur(), ")")) break;
      MacroParam p;
      p.name = ExpectName();
      if (SkipOp("=")) p.default_value = ParseExpression(true);
      n->params.push_back(std::move(p));
    }
    ExpectOp(")");
    ExpectBlockEnd();
    int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    n->body = ParseBody({"endmacro"});
    loop_depth_ = saved_loop_depth;
    Next();
    if (Cur().type == TokenType::kName) Next();  // {% endmacro name %}
    ExpectBlockEnd();
    return n;
  }

  NodePtr ParseFilterBlock(const Token& tag) {
    auto n = NewNode(NodeKind::kFilterBlock, tag);
    // The first filter has no leading '|'.
    const Token& at = Cur();
    ExprPtr input = MakeExpr(ExprKind::kBlockInput, at);
    n->expr = ParseFilter(std::move(input));
    n->expr = ParseFilterChain(std::move(n->expr));
    ExpectBlockEnd();
    n->body = ParseBody({"endfilter"});
    Next();
    ExpectBlockEnd();
    return n;
  }

  // ---- expressions ----

  // Comma-separated expressions; a tuple when a comma appears. Stops at '%}', '}}', ')' or a
  // name in `extra_end`.
  ExprPtr ParseTuple(bool with_condexpr, std::initializer_list<const char*> extra_end) {
    const Token& start = Cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) ExpectOp(",");
      const Token& t = Cur();
      bool end = t.type == TokenType::kVarEnd || t.type == TokenType::kBlockEnd || IsOp(t, ")");
      for (const char* e : extra_end) end = end || IsName(t, e);
      if (end) break;
      items.push_back(ParseExpression(with_condexpr));
      if (IsOp(Cur(), ",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (items.empty()) FailAt(start, "expected an expression, got " + Describe(start));
      return std::move(items[0]);
    }
    auto tuple = MakeExpr(ExprKind::kTuple, start);
    tuple->items = std::move(items);
    return tuple;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(this, Cur());
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }

  ExprPtr ParseCondExpr() {
    ExprPtr expr = ParseOr();
    while (IsName(Cur(), "if")) {
      const Token at = Next();
      auto cond = MakeExpr(ExprKind::kCondExpr, at);
      cond->a = ParseOr();
      cond->b = std::move(expr);
      if (SkipName("else")) cond->c = ParseCondExpr();
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr Binary(const Token& at, const std::string& op, ExprPtr l, ExprPtr r) {
    auto e = MakeExpr(ExprKind::kBinary, at);
    e->name = op;
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr l = ParseAnd();
    while (IsName(Cur(), "or")) {
      const Token at = Next();
      l = Binary(at, "or", std::move(l), ParseAnd());
    }
    return l;
  }

  ExprPtr ParseAnd() {
    ExprPtr l = ParseNot();
    while (IsName(Cur(), "and")) {
      const Token at = Next();
      l = Binary(at, "and", std::move(l), ParseNot());
    }
    return l;
  }

  ExprPtr ParseNot() {
    if (IsName(Cur(), "not")) {
      const Token at = Next();
      DepthGuard guard(this, at);
      auto e = MakeExpr(ExprKind::kNot, at);
      e->a = ParseNot();
      return e;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const Token& start = Cur();
    ExprPtr first = ParseMath1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& t = Cur();
      std::string op;
      if (t.type == TokenType::kOperator &&
          (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">=")) {
        op = t.text;
        Next();
      } else if (IsName(t, "in")) {
        op = "in";
        Next();
      } else if (IsName(t, "not") && IsName(Peek(), "in")) {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      ops.push_back(op);
      operands.push_back(ParseMath1());
    }
    if (ops.empty()) return first;
    auto e = MakeExpr(ExprKind::kCompare, start);
    e->a = std::move(first);
    e->compare_ops = std::move(ops);
    e->items = std::move(operands);
    return e;
  }

  ExprPtr ParseMath1() {
    ExprPtr l = ParseConcat();
    while (IsOp(Cur(), "+") || IsOp(Cur(), "-")) {
      const Token at = Next();
      l = Binary(at, at.text, std::move(l), ParseConcat());
    }
    return l;
  }

  ExprPtr ParseConcat() {
    ExprPtr l = ParseMath2();
    while (IsOp(Cur(), "~")) {
      const Token at = Next();
      l = Binary(at, "~", std::move(l), ParseMath2());
    }
    return l;
  }

  ExprPtr ParseMath2() {
    ExprPtr l = ParsePow();
    while (IsOp(Cur(), "*") || IsOp(Cur(), "/") || IsOp(Cur(), "//") || IsOp(Cur(), "%")) {
      const Token at = Next();
      l = Binary(at, at.text, std::move(l), ParsePow());
    }
    return l;
  }

  ExprPtr ParsePow() {
    ExprPtr l = ParseUnary(true);
    while (IsOp(Cur(), "**")) {
      const Token at = Next();
      l = Binary(at, "**", std::move(l), ParseUnary(true));
    }
    return l;
  }

  ExprPtr ParseUnary(bool with_filter) {
    const Token& t = Cur();
    DepthGuard guard(this, t);
    ExprPtr node;
    if (IsOp(t, "-") || IsOp(t, "+")) {
      const Token at = Next();
      node = MakeExpr(at.text == "-" ? ExprKind::kNeg : ExprKind::kPos, at);
      node->a = ParseUnary(false);
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    switch (t.type) {
      case TokenType::kName: {
        Next();
        auto e = MakeExpr(ExprKind::kLiteral, t);
        if (t.text == "true" || t.text == "True") e->literal = Value::Bool(true);
        else if (t.text == "false" || t.text == "False") e->literal = Value::Bool(false);
        else if (t.text == "none" || t.text == "None") e->literal = Value::None();
        else {
          e->kind = ExprKind::kName;
          e->name = t.text;
        }
        return e;
      }
      case TokenType::kString: {
        auto e = MakeExpr(ExprKind::kLiteral, t);
        std::string s;
        while (Cur().type == TokenType::kString) s += Next().text;  // adjacent literals concatenate
        e->literal = Value::Str(std::move(s));
        return e;
      }
      case TokenType::kInteger: {
        Next();
        auto e = MakeExpr(ExprKind::kLiteral, t);
        e->literal = Value::Int(t.int_value);
        return e;
      }
      case TokenType::kFloat: {
        Next();
        auto e = MakeExpr(ExprKind::kLiteral, t);
        e->literal = Value::Float(t.float_value);
        return e;
      }
      case TokenType::kOperator:
        if (t.text == "(") {
          Next();
          ExprPtr inner;
          if (IsOp(Cur(), ")")) {
            inner = MakeExpr(ExprKind::kTuple, t);  // ()
          } else {
            inner = ParseTuple(true, {});
          }
          ExpectOp(")");
          return inner;
        }
        if (t.text == "[") {
          Next();
          auto e = MakeExpr(ExprKind::kList, t);
          while (!IsOp(Cur(), "]")) {
            if (!e->items.empty()) ExpectOp(",");
            if (IsOp(Cur(), "]")) break;
            e->items.push_back(ParseExpression(true));
          }
          ExpectOp("]");
          return e;
        }
        if (t.text == "{") {
          Next();
          auto e = MakeExpr(ExprKind::kDict, t);
          while (!IsOp(Cur(), "}")) {
            if (!e->items.empty()) ExpectOp(",");
            if (IsOp(Cur(), "}")) break;
            e->items.push_back(ParseExpression(true));
            ExpectOp(":");
            e->items.push_back(ParseExpression(true));
          }
          ExpectOp("}");
          return e;
        }
        break;
      default: break;
    }
    FailAt(t, "unexpected " + Describe(t) + " in expression");
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      const Token& t = Cur();
      if (IsOp(t, ".")) {
        Next();
        const Token& attr = Cur();
        if (attr.type == TokenType::kName) {
          Next();
          auto e = MakeExpr(ExprKind::kGetAttr, attr);
          e->a = std::move(node);
          e->name = attr.text;
          node = std::move(e);
        } else if (attr.type == TokenType::kInteger) {
          Next();
          auto e = MakeExpr(ExprKind::kGetItem, attr);
          e->a = std::move(node);
          e->b = MakeExpr(ExprKind::kLiteral, attr);
          e->b->literal = Value::Int(attr.int_value);
          node = std::move(e);
        } else {
          FailAt(attr, "expected an attribute name after '.', got " + Describe(attr));
        }
      } else if (IsOp(t, "[")) {
        Next();
        node = ParseSubscript(std::move(node), t);
      } else if (IsOp(t, "(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr obj, const Token& at) {
    // Either a[expr], a[expr, expr] (tuple key) or a slice a[start:stop:step].
    std::vector<ExprPtr> parts(3);
    bool is_slice = false;
    int part = 0;
    std::vector<ExprPtr> tuple_items;
    while (!IsOp(Cur(), "]")) {
      if (IsOp(Cur(), ":")) {
        Next();
        is_slice = true;
        if (++part > 2) FailAt(Cur(), "too many ':' in slice");
        continue;
      }
      if (IsOp(Cur(), ",")) {
        if (is_slice) FailAt(Cur(), "unsupported: multi-dimensional slices");
        Next();
        tuple_items.push_back(std::move(parts[0]));
        continue;
      }
      if (parts[part]) FailAt(Cur(), "expected ']' or ':' in subscript, got " + Describe(Cur()));
      parts[part] = ParseExpression(true);
    }
    ExpectOp("]");
    if (is_slice) {
      auto e = MakeExpr(ExprKind::kSlice, at);
      e->a = std::move(obj);
      e->items = std::move(parts);
      return e;
    }
    auto e = MakeExpr(ExprKind::kGetItem, at);
    e->a = std::move(obj);
    if (!tuple_items.empty()) {
      if (parts[0]) tuple_items.push_back(std::move(parts[0]));
      e->b = MakeExpr(ExprKind::kTuple, at);
      e->b->items = std::move(tuple_items);
    } else {
      if (!parts[0]) FailAt(at, "empty subscript");
      e->b = std::move(parts[0]);
    }
    return e;
  }

  // Parses "(args)" into e->items / e->kwargs.
  void ParseArgs(Expr* e) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(Cur(), ")")) {
      if (!first) ExpectOp(",");
      first = false;
      if (IsOp(Cur(), ")")) break;
      if (IsOp(Cur(), "*") || IsOp(Cur(), "**")) FailAt(Cur(), "unsupported: *args / **kwargs in calls");
      if (Cur().type == TokenType::kName && IsOp(Peek(), "=")) {
        std::string key = Next().text;
        Next();
        e->kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        if (!e->kwargs.empty()) FailAt(Cur(), "positional argument after keyword argument");
        e->items.push_back(ParseExpression(true));
      }
    }
    ExpectOp(")");
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto e = MakeExpr(ExprKind::kCall, Cur());
    e->a = std::move(callee);
    ParseArgs(e.get());
    return e;
  }

  std::string ParseDottedName() {
    std::string name = ExpectName();
    while (IsOp(Cur(), ".") && Peek().type == TokenType::kName) {
      Next();
      name += "." + Next().text;
    }
    return name;
  }

  // name[(args)] applied to `input` (the cursor is on the filter name).
  ExprPtr ParseFilter(ExprPtr input) {
    const Token at = Cur();
    auto e = MakeExpr(ExprKind::kFilter, at);
    e->name = ParseDottedName();
    if (!IsKnownFilter(e->name)) FailAt(at, "unsupported filter '" + e->name + "'");
    e->a = std::move(input);
    if (IsOp(Cur(), "(")) ParseArgs(e.get());
    return e;
  }

  ExprPtr ParseFilterChain(ExprPtr node) {
    while (SkipOp("|")) node = ParseFilter(std::move(node));
    return node;
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp(Cur(), "|")) {
        Next();
        node = ParseFilter(std::move(node));
      } else if (IsName(Cur(), "is")) {
        Next();
        node = ParseTest(std::move(node));
      } else if (IsOp(Cur(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseTest(ExprPtr node) {
    bool negated = SkipName("not");
    const Token at = Cur();
    auto e = MakeExpr(ExprKind::kTest, at);
    e->name = ParseDottedName();
    if (!IsKnownTest(e->name)) FailAt(at, "unsupported test '" + e->name + "'");
    e->negated = negated;
    e->a = std::move(node);
    const Token& t = Cur();
    if (IsOp(t, "(")) {
      ParseArgs(e.get());
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || IsOp(t, "[") || IsOp(t, "{")) &&
               !IsName(t, "else") && !IsName(t, "or") && !IsName(t, "and")) {
      if (IsName(t, "is")) FailAt(t, "you cannot chain multiple tests with 'is'");
      e->items.push_back(ParsePostfix(ParsePrimary()));
    }
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

NodeList ParseTokens(std::vector<Token> tokens) { return Parser(std::move(tokens)).ParseTemplate(); }

}  // namespace lms::jinja
