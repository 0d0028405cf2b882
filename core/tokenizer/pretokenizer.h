// Byte-level BPE pre-tokenization: splitting text into words before merges run.
//
// A pre-tokenizer is a list of regexes applied in turn (llama.cpp's unicode_regex_split, which
// mirrors Hugging Face's Sequence of Split pre-tokenizers with "isolated" behaviour): each regex
// runs separately inside every piece left by the previous one, and both its matches and the
// unmatched gaps between them become pieces. Regexes run on PCRE2 in UTF + UCP mode.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/status.h"

namespace lms::tok {

// What tokenizer.ggml.pre selects, following llama.cpp's llama_vocab::impl::load.
struct PreTokenizerSpec {
  std::string canonical;             // the family name, for diagnostics ("llama3", "gpt2", …)
  std::vector<std::string> regexes;  // applied in order
  bool ignore_merges = false;        // a word that is itself a token skips merging (Llama 3)
  bool add_bos = false;              // default for tokenizer.ggml.add_bos_token when absent
};

// nullopt when the name is unknown. "" and "default" give llama.cpp's default pre-tokenizer.
std::optional<PreTokenizerSpec> FindPreTokenizer(std::string_view pre);

class RegexSplitter {
 public:
  // Compiles (and JIT-compiles where available) every pattern; fails naming a bad pattern.
  static Result<std::unique_ptr<RegexSplitter>> Create(const std::vector<std::string>& patterns);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // REQUIRES: `text` is valid UTF-8 (see SanitizeUtf8). Appends the pieces, in order and
  // covering the text exactly, to *pieces. Thread-safe.
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

 private:
  RegexSplitter() = default;
  std::vector<void*> codes_;  // pcre2_code_8*, kept opaque so the header needs no PCRE2
};

// Rewrites \s and \S to Unicode's White_Space set (which, unlike PCRE2's \s, includes U+0085,
// as Hugging Face's regex engines do). Exposed for tests.
std::string TranslateWhitespaceClasses(std::string_view pattern);

}  // namespace lms::tok
