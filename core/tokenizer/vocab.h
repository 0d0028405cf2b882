// The tokenizer's input: a vocabulary as plain data, independent of where it came from.
// LoadVocab() fills it from a GGUF file's tokenizer.ggml.* metadata; tests build it in code.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/util/status.h"

namespace lms {

namespace gguf {
class GgufFile;
}

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct VocabData {
  std::string model;         // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
  std::string pre;           // tokenizer.ggml.pre: "smollm", "llama-bpe", "qwen2", … ("" = default)
  std::string general_name;  // general.name: llama.cpp keys a few per-model quirks on it (Phi-3)
  std::vector<std::string> tokens;   // token text by id (byte-level BPE: GPT-2 byte-encoded)
  std::vector<float> scores;         // SentencePiece merge scores; empty = all 0
  std::vector<int32_t> token_types;  // TokenType values; empty = all normal
  std::vector<std::string> merges;   // BPE merges "left right", by rank (index 0 merges first)

  // Special ids: nullopt = absent from the metadata, the model type's llama.cpp default applies
  // (SentencePiece: bos 1, eos 2, unk 0; BPE: bos = eos = 11); -1 = explicitly none.
  std::optional<int32_t> bos_id, eos_id, eot_id, eom_id, unk_id, pad_id, sep_id;
  // Fill-in-the-middle tokens; when absent they are recognised by their text, as llama.cpp does.
  std::optional<int32_t> fim_pre_id, fim_suf_id, fim_mid_id, fim_pad_id, fim_rep_id, fim_sep_id;
  // nullopt = absent: llama.cpp's default for the model/pre type applies.
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

// Reads tokenizer.ggml.* (and general.name) from a GGUF file. Fails, naming the key, when the
// token list is missing or a key has the wrong type or length.
Result<VocabData> LoadVocab(const gguf::GgufFile& file);

}  // namespace lms
