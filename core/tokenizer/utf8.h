// UTF-8 helpers and GPT-2's byte <-> unicode table, shared by the tokenizers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lms::tok {

// Length of the UTF-8 sequence a lead byte announces, judged by its high nibble only (as
// llama.cpp's SentencePiece splitter does): 1 for ASCII and stray continuation bytes.
inline size_t Utf8SeqLen(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

void AppendUtf8(std::string* out, uint32_t cp);

// Decodes one well-formed code point at s[*pos] (no overlongs, surrogates or values past
// U+10FFFF) and advances *pos; returns false, leaving *pos alone, when the bytes there are not one.
bool DecodeUtf8(std::string_view s, size_t* pos, uint32_t* cp);

bool IsValidUtf8(std::string_view s);

// Replaces each byte that does not start a well-formed sequence by U+FFFD, so that regexes
// can run in UTF mode (llama.cpp substitutes U+FFFD the same way before pre-tokenizing).
std::string SanitizeUtf8(std::string_view s);

// Number of bytes at the end of `s` that form an incomplete (but so far valid) UTF-8 sequence,
// 0..3. A streaming decoder holds these back until the next piece completes them.
size_t IncompleteUtf8Tail(std::string_view s);

// GPT-2's reversible byte -> code point map: printable bytes map to themselves, the rest to
// U+0100 onwards. ByteToUnicode()[b] is the UTF-8 of the code point standing for byte b.
const std::array<std::string, 256>& ByteToUnicode();
// Inverse: code point -> byte, or -1 when the code point stands for no byte.
int UnicodeToByte(uint32_t cp);

}  // namespace lms::tok
