// Training data: text files → tokens (a GGUF model's tokenizer, or a byte-level one) → token
// shards on disk → batches of (input, target) sequences; a held-out tail for validation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/vocab.h"
#include "core/util/status.h"

namespace lms::train {

// A byte-level vocabulary: 256 GPT-2 byte tokens, one merge (two spaces, id 256) and
// <|endoftext|> (id 257) as BOS/EOS. Written into exported GGUF files, so `lmstation run` tokenizes exactly as training did.
VocabData ByteLevelVocab();

// Reads each file and encodes it (BOS per file when the tokenizer adds it; EOS between files).
Result<std::vector<int32_t>> TokenizeFiles(const std::vector<std::string>& paths, const Tokenizer& tok);

// Token shard file: "LMSTOK01", u64 count, u32 tokens (little-endian). Written atomically.
Status WriteShard(const std::string& path, const std::vector<int32_t>& tokens);
Result<std::vector<int32_t>> ReadShard(const std::string& path);

// Sequential batches of B sequences of T+1 tokens (inputs = first T, targets = last T), stepping
// by B·T tokens and wrapping to the start. The position is all the state a resume needs.
class BatchLoader {
 public:
  BatchLoader(std::vector<int32_t> tokens, int32_t seq_len);
  // REQUIRES: tokens.size() > seq_len. inputs/targets resized to B·T.
  void Next(int batch, std::vector<int32_t>& inputs, std::vector<int32_t>& targets);
  int64_t position() const { return pos_; }
  void set_position(int64_t p) { pos_ = p; }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

 private:
  std::vector<int32_t> tokens_;
  int32_t T_;
  int64_t pos_ = 0;
};

}  // namespace lms::train
