// Paged key/value cache: per layer, K and V rows live in fixed-size blocks handed out by a pool;
// a sequence owns a block table mapping its positions to blocks. Attention reads through the
// block table, so sequences never need contiguous storage.
//
// Thread-safety: not thread-safe; the engine thread owns it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend/backend.h"
#include "core/model/model_config.h"

namespace lms {

struct KvCacheOptions {
  int32_t block_size = 16;         // tokens per block
  int64_t n_blocks = 0;            // 0: enough for `context_tokens`
  int64_t context_tokens = 4096;   // used when n_blocks == 0
  TensorType type = TensorType::kF16;  // F16, Q8_0 (blocks of 32 with an f16 scale) or F32
};

class BlockPool {
 public:
  explicit BlockPool(int64_t n_blocks);
  // Returns a free block id, or -1 when none is left (an ordinary outcome, not an error).
  int32_t Allocate();
  void Free(int32_t block);
  int64_t n_free() const { return static_cast<int64_t>(free_.size()); }
  int64_t n_total() const { return n_total_; }

 private:
  int64_t n_total_;
  std::vector<int32_t> free_;  // LIFO: recently freed blocks are reused first (warm in cache)
};

// One sequence's view of the cache.
struct KvSequence {
  std::vector<int32_t> blocks;
  int32_t n_tokens = 0;  // positions [0, n_tokens) hold valid K/V
};

class KvCache {
 public:
  static Result<KvCache> Create(Backend& backend, const ModelConfig& config,
                                const KvCacheOptions& options);

  int32_t block_size() const { return block_size_; }
  int64_t capacity_tokens() const { return pool_.n_total() * block_size_; }
  BlockPool& pool() { return pool_; }
  const TensorView& k(int layer) const { return k_[layer]; }
  const TensorView& v(int layer) const { return v_[layer]; }
  size_t bytes() const;

  // Grows seq's block table to hold n_tokens positions. ResourceExhausted when the pool runs dry
  // (blocks taken so far stay with the sequence).
  Status Reserve(KvSequence& seq, int32_t n_tokens);
  // Drops positions >= n_tokens, returning whole blocks no longer needed.
  void Truncate(KvSequence& seq, int32_t n_tokens);
  void Release(KvSequence& seq) { Truncate(seq, 0); }
  // Copies every layer's K and V rows of block `src` into block `dst` (copy-on-write when a
  // forked sequence writes into a shared block), through the backend that holds the cache.
  void CopyBlock(int32_t src, int32_t dst);
  int32_t Slot(const KvSequence& seq, int32_t pos) const {
    return seq.blocks[pos / block_size_] * block_size_ + pos % block_size_;
  }

 private:
  KvCache(Backend& backend, int32_t block_size, int64_t n_blocks)
      : backend_(&backend), block_size_(block_size), pool_(n_blocks) {}
  Backend* backend_;
  int32_t block_size_;
  BlockPool pool_;
  std::vector<TensorView> k_, v_;  // per layer: rows = n_blocks*block_size, cols = n_kv*head_dim
};

}  // namespace lms
