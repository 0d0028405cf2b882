// Tokenizer for the Jinja template language, reproducing jinja2's lexer rules that decide
// which whitespace survives: `{%-`/`-%}` stripping, trim_blocks (drop the first newline after
// a block or comment tag), lstrip_blocks (drop spaces/tabs between a line start and a block or
// comment tag), `+` opt-outs, newline normalization and dropping one trailing newline
// (keep_trailing_newline=False). Comments vanish; `{% raw %}` bodies become data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lms::jinja {

struct LexOptions {
  bool trim_blocks = true;    // HF renders chat templates with trim_blocks=True
  bool lstrip_blocks = true;  // … and lstrip_blocks=True
};

enum class TokenType : uint8_t {
  kData,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // text holds the decoded value
  kInteger,
  kFloat,
  kOperator,    // text holds the operator ("+", "//", "(", …)
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;  // 1-based
  int col = 1;   // 1-based, in bytes
};

// Throws TemplateError (with position) on malformed input: unterminated tags, comments or
// strings, unbalanced brackets, characters that start no token.
std::vector<Token> Tokenize(std::string_view source, const LexOptions& options);

}  // namespace lms::jinja
