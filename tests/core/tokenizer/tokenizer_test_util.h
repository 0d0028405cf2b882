// Varied, valid UTF-8 test strings for tokenizer round-trips: words, numbers, code, whitespace
// runs, several scripts, emoji with joiners and variation selectors, combining marks.
// (No "</s>": Phi-3 marks it user-defined with rstrip, so llama.cpp drops the spaces after it.)
#pragma once

#include <random>
#include <string>
#include <vector>

namespace lms::test {

inline std::vector<std::string> VariedTexts(size_t count, uint32_t seed) {
  static const std::vector<std::string> kPieces = {
      "Hello", "world", "the", "quick", "brown", "fox", "DON'T", "we'll", "it's", "I'm", "they're",
      "0", "7", "42", "1234567", "3.14159", "1e-9", "0x7FFF", "-12", "1,000,000", "2024-06-01",
      "int main() { return 0; }", "def f(x):\n    return x**2\n", "a->b", "x != y", "i++;", "#include <cstdio>",
      "<div class=\"x\">", "<|endoftext|>", "<|im_start|>", "[INST]", "__init__", "snake_case", "camelCase",
      " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t  \n", "        ",
      "!", "?", "...", "!!!", "''", "\"", "```", "---", "===", "(", ")", "[", "]", "{", "}", ";", ":", "@", "#", "$", "%",
      "\xC3\xA9t\xC3\xA9",                          // été
      "na\xC3\xAFve",                               // naïve
      "e\xCC\x81",                                  // e + combining acute
      "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",  // привет
      "\xCE\xB1\xCE\xB2\xCE\xB3",                   // αβγ
      "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C",  // 你好世界
      "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF",  // こんにちは
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",       // 한국어
      "\xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9",  // العربية
      "\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80",  // हिन्दी
      "\xE1\x9E\x80\xE1\x9E\xB6\xE1\x9E\x93\xE1\x9F\x8B",  // Khmer
      "\xF0\x9F\xA6\x99",                           // 🦙
      "\xF0\x9F\x98\x80",                           // 😀
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",  // family (ZWJ)
      "\xE2\x9C\x85",                               // ✅
      "\xE2\x9D\xA4\xEF\xB8\x8F",                   // ❤️
      "\xC2\xA0",                                   // no-break space
      "\xE3\x80\x80",                               // ideographic space
      "\xE2\x80\xA8",                               // line separator
      "\xC2\x85",                                   // next line
      "\xEF\xBB\xBF",                               // BOM
      "\xE2\x82\xAC" "5",                           // €5
      "\xC2\xBD",                                   // ½
      "\xE2\x85\xA7",                               // Ⅷ
      "\xF0\x9D\x94\xB8",                           // 𝔸
  };
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, kPieces.size() - 1);
  std::uniform_int_distribution<int> len(1, 12);
  std::uniform_int_distribution<int> sep(0, 3);
  std::vector<std::string> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    std::string s;
    const int n = len(rng);
    for (int k = 0; k < n; ++k) {
      s += kPieces[pick(rng)];
      if (sep(rng) == 0) s += ' ';
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace lms::test
