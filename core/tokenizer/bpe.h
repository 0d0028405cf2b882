// Byte-level BPE merging of one pre-tokenized word (GPT-2 style, as llama.cpp's
// llm_tokenizer_bpe_session): the word's bytes start as one symbol each, and the adjacent pair
// with the lowest merge rank (leftmost on ties) is merged until no ranked pair is left.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tokenizer/token_map.h"

namespace lms::tok {

class BpeMerger {
 public:
  // `map` must outlive the merger. Merges are "left right" strings, index = rank; a merge whose
  // sides or result are not tokens can never apply to token symbols and is skipped.
  BpeMerger(const TokenMap& map, const std::vector<std::string>& merges, bool ignore_merges);

  // `word`: the raw UTF-8 bytes of one pre-tokenized piece. Appends its token ids.
  // Thread-safe (const, no shared scratch).
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  size_t n_merges() const { return merges_.size(); }
  size_t n_skipped_merges() const { return skipped_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;  // token id of the merged pair
  };
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  const TokenMap& map_;
  bool ignore_merges_;
  std::array<int32_t, 256> byte_ids_;  // token of each byte's GPT-2 code point, -1 if absent
  std::unordered_map<uint64_t, Merge> merges_;
  size_t skipped_ = 0;
};

}  // namespace lms::tok
