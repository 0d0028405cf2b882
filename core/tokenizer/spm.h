// SentencePiece-style merging (llama.cpp's llm_tokenizer_spm_session): the text's UTF-8
// characters start as symbols, and the adjacent pair whose concatenation is the token with
// the highest score (leftmost on ties) is merged until none is left. Symbols that are not
// tokens fall back to byte tokens <0xXX>.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/tokenizer/token_map.h"

namespace lms::tok {

struct SpmModel {
  const TokenMap* map = nullptr;
  const std::vector<float>* scores = nullptr;  // by token id; empty = all 0
  std::array<int32_t, 256> byte_ids{};         // <0xXX> (or the raw byte) token, -1 if absent
  int32_t unk_id = -1;                          // used for bytes without a token
};

// `text`: already space-escaped ("▁" for ' '). Appends token ids. Thread-safe.
void SpmEncode(const SpmModel& model, std::string_view text, std::vector<int32_t>* out);

}  // namespace lms::tok
