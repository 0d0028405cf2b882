#include "core/jinja/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "core/jinja/value.h"

namespace lms::jinja {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's "unicode-escape" decoding, which jinja2 applies to string literals. Unknown escapes
// (e.g. "\d") are kept verbatim, as Python does.
std::string DecodeStringLiteral(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        uint32_t cp = 0;
        bool ok = i + digits < body.size();
        for (size_t k = 1; ok && k <= digits; ++k) {
          int h = HexValue(body[i + k]);
          if (h < 0) ok = false;
          else cp = cp * 16 + h;
        }
        if (!ok || cp > 0x10ffff) throw TemplateError(std::string("malformed \\") + e + " escape in string literal");
        AppendUtf8(out, cp);
        i += digits;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = e - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            cp = cp * 8 + (body[++i] - '0');
          AppendUtf8(out, cp);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view source, const LexOptions& options) : opts_(options) {
    // Newlines normalize to "\n" and one trailing newline is dropped, as jinja2 does.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> Run() {
    size_t pos = 0;
    const size_t n = src_.size();
    while (pos < n) {
      size_t start = FindTagStart(pos);
      if (start == std::string::npos) {
        Emit(TokenType::kData, src_.substr(pos), pos);
        break;
      }
      char kind = src_[start + 1];
      size_t p = start + 2;
      char sign = (p < n && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
      if (kind == '%' && TryRaw(pos, start, sign)) {
        pos = raw_end_;
        continue;
      }
      EmitText(pos, start, sign, kind != '{');
      if (sign) ++p;
      line_starting_ = false;
      if (kind == '#') {
        pos = SkipComment(p, start);
        continue;
      }
      Emit(kind == '{' ? TokenType::kVarBegin : TokenType::kBlockBegin, "", start);
      pos = LexTag(p, kind == '{', start);
    }
    Emit(TokenType::kEof, "", src_.size());
    return std::move(out_);
  }

 private:
  [[noreturn]] void Fail(const std::string& what, size_t offset) {
    auto [line, col] = Position(offset);
    throw TemplateError(what, line, col);
  }

  std::pair<int, int> Position(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line_idx = static_cast<size_t>(it - line_starts_.begin()) - 1;
    return {static_cast<int>(line_idx + 1), static_cast<int>(offset - line_starts_[line_idx] + 1)};
  }

  void Emit(TokenType type, std::string text, size_t offset) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    auto [line, col] = Position(offset);
    t.line = line;
    t.col = col;
    out_.push_back(std::move(t));
  }

  size_t FindTagStart(size_t pos) const {
    for (size_t i = src_.find('{', pos); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // Emits src_[from, to) as data after applying the whitespace rules for the tag that follows.
  // `lstrip_applies`: block and comment tags (not {{ }}) honour lstrip_blocks.
  void EmitText(size_t from, size_t to, char sign, bool lstrip_applies) {
    std::string_view text(src_.data() + from, to - from);
    if (sign == '-') {
      size_t e = text.size();
      while (e > 0 && IsSpace(text[e - 1])) --e;
      text = text.substr(0, e);
    } else if (sign != '+' && opts_.lstrip_blocks && lstrip_applies) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        bool only_ws = true;
        for (size_t i = l_pos; i < text.size(); ++i)
          if (!IsSpace(text[i])) only_ws = false;
        if (only_ws) text = text.substr(0, l_pos);
      }
    }
    if (!text.empty()) Emit(TokenType::kData, std::string(text), from);
  }

  // After an end delimiter: `-` eats all following whitespace, a plain one (with trim_blocks)
  // a single newline, `+` nothing. Returns the new position and updates line_starting_.
  size_t AfterTagEnd(size_t p, char end_sign) {
    size_t q = p;
    if (end_sign == '-') {
      while (q < src_.size() && IsSpace(src_[q])) ++q;
    } else if (end_sign == 0 && opts_.trim_blocks && q < src_.size() && src_[q] == '\n') {
      ++q;
    }
    line_starting_ = q > 0 && src_[q - 1] == '\n' && q > p;
    return q;
  }

  size_t SkipComment(size_t p, size_t tag_start) {
    for (size_t j = src_.find("#}", p); j != std::string::npos; j = src_.find("#}", j + 1)) {
      char end_sign = 0;
      if (j > p && (src_[j - 1] == '-' || src_[j - 1] == '+')) end_sign = src_[j - 1];
      size_t after = j + 2;
      if (end_sign == '-') {
        while (after < src_.size() && IsSpace(src_[after])) ++after;
        line_starting_ = after > j + 2 && src_[after - 1] == '\n';
        return after;
      }
      if (end_sign == '+') {
        line_starting_ = false;
        return after;
      }
      // Comments follow trim_blocks like blocks do.
      return AfterTagEnd(after, 0);
    }
    Fail("missing end of comment tag '#}'", tag_start);
  }

  // {% raw %}…{% endraw %}: the body is literal data.
  bool TryRaw(size_t text_from, size_t start, char sign) {
    size_t p = start + 2 + (sign ? 1 : 0);
    auto skip_ws = [&](size_t q) {
      while (q < src_.size() && IsSpace(src_[q])) ++q;
      return q;
    };
    p = skip_ws(p);
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && IsNameChar(src_[p + 3]))) return false;
    p = skip_ws(p + 3);
    size_t body;
    if (src_.compare(p, 3, "-%}") == 0) {
      body = skip_ws(p + 3);
    } else if (src_.compare(p, 2, "%}") == 0) {
      body = p + 2;
    } else {
      Fail("malformed raw tag", start);
    }
    EmitText(text_from, start, sign, true);
    // Find "{%[-+]? endraw [-+]?%}".
    for (size_t j = src_.find("{%", body); j != std::string::npos; j = src_.find("{%", j + 1)) {
      size_t q = j + 2;
      char esign = (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ? src_[q] : 0;
      if (esign) ++q;
      q = skip_ws(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_ws(q + 6);
      char end_sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) end_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) continue;
      line_starting_ = body > 0 && src_[body - 1] == '\n';
      EmitText(body, j, esign, true);
      raw_end_ = AfterTagEnd(q + 2, end_sign);
      return true;
    }
    Fail("missing {% endraw %} for this raw block", start);
  }

  // Lexes expression tokens until the closing delimiter; returns the position after it.
  size_t LexTag(size_t p, bool is_var, size_t tag_start) {
    const size_t n = src_.size();
    std::vector<char> balance;
    const char* end = is_var ? "}}" : "%}";
    while (true) {
      if (p >= n) Fail(std::string("unexpected end of template: missing '") + end + "'", tag_start);
      if (balance.empty()) {
        char end_sign = 0;
        size_t q = p;
        if ((src_[q] == '-' || (src_[q] == '+' && !is_var)) && src_.compare(q + 1, 2, end) == 0) end_sign = src_[q++];
        if (src_.compare(q, 2, end) == 0) {
          Emit(is_var ? TokenType::kVarEnd : TokenType::kBlockEnd, "", p);
          if (is_var) {
            // Variable tags never trim the following newline; only '-' strips.
            size_t r = q + 2;
            if (end_sign == '-') {
              while (r < n && IsSpace(src_[r])) ++r;
              line_starting_ = r > q + 2 && src_[r - 1] == '\n';
            } else {
              line_starting_ = false;
            }
            return r;
          }
          return AfterTagEnd(q + 2, end_sign);
        }
      }
      char c = src_[p];
      if (IsSpace(c)) {
        ++p;
        continue;
      }
      if (IsDigit(c)) {
        p = LexNumber(p);
        continue;
      }
      if (IsNameStart(c)) {
        size_t q = p;
        while (q < n && IsNameChar(src_[q])) ++q;
        Emit(TokenType::kName, src_.substr(p, q - p), p);
        p = q;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t q = p + 1;
        while (q < n && src_[q] != c) q += (src_[q] == '\\') ? 2 : 1;
        if (q >= n) Fail("unterminated string literal", p);
        try {
          Emit(TokenType::kString, DecodeStringLiteral(std::string_view(src_).substr(p + 1, q - p - 1)), p);
        } catch (TemplateError& e) {
          Fail(e.what(), p);
        }
        p = q + 1;
        continue;
      }
      static const char* kTwoCharOps[] = {"//", "**", "==", "!=", "<=", ">="};
      std::string op;
      for (const char* two : kTwoCharOps)
        if (src_.compare(p, 2, two) == 0) op = two;
      if (op.empty() && std::string_view("+-/*%~[](){}<>=.:|,;").find(c) != std::string_view::npos) op = std::string(1, c);
      if (op.empty()) Fail(std::string("unexpected character '") + c + "' in tag", p);
      if (op == "(" || op == "[" || op == "{") {
        balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (balance.empty()) Fail("unexpected '" + op + "'", p);
        if (balance.back() != op[0]) Fail("unexpected '" + op + "', expected '" + std::string(1, balance.back()) + "'", p);
        balance.pop_back();
      }
      Emit(TokenType::kOperator, op, p);
      p += op.size();
    }
  }

  size_t LexNumber(size_t p) {
    const size_t n = src_.size();
    auto digits = [&](size_t q) {
      while (q < n && (IsDigit(src_[q]) || (src_[q] == '_' && q + 1 < n && IsDigit(src_[q + 1])))) ++q;
      return q;
    };
    size_t q = digits(p);
    bool after_dot = p > 0 && src_[p - 1] == '.';  // foo.0 is an index, not a float
    bool is_float = false;
    if (!after_dot) {
      if (q + 1 < n && src_[q] == '.' && IsDigit(src_[q + 1])) {
        q = digits(q + 1);
        is_float = true;
      }
      if (q < n && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t r = q + 1;
        if (r < n && (src_[r] == '+' || src_[r] == '-')) ++r;
        if (r < n && IsDigit(src_[r])) {
          q = digits(r);
          is_float = true;
        }
      }
    }
    std::string text;
    for (size_t i = p; i < q; ++i)
      if (src_[i] != '_') text += src_[i];
    Token t;
    auto [line, col] = Position(p);
    t.line = line;
    t.col = col;
    t.text = text;
    if (is_float) {
      t.type = TokenType::kFloat;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.type = TokenType::kInteger;
      errno = 0;
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) Fail("integer literal out of range", p);
    }
    out_.push_back(std::move(t));
    return q;
  }

  LexOptions opts_;
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> out_;
  bool line_starting_ = true;
  size_t raw_end_ = 0;
};

}  // namespace

std::vector<Token> Tokenize(std::string_view source, const LexOptions& options) {
  return Lexer(source, options).Run();
}

}  // namespace lms::jinja
