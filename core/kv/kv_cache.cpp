#include "core/kv/kv_cache.h"

#include <fmt/format.h>

#include <cassert>
#include <cstring>

#include "core/util/log.h"

namespace lms {

BlockPool::BlockPool(int64_t n_blocks) : n_total_(n_blocks) {
  free_.reserve(n_blocks);
  for (int64_t i = n_blocks - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
}

int32_t BlockPool::Allocate() {
  if (free_.empty()) return -1;
  int32_t b = free_.back();
  free_.pop_back();
  return b;
}

void BlockPool::Free(int32_t block) {
  assert(block >= 0 && block < n_total_);
  free_.push_back(block);
}

Result<KvCache> KvCache::Create(Backend& backend, const ModelConfig& c, const KvCacheOptions& o) {
  if (o.block_size <= 0 || o.block_size > 1024) {
    return Status::InvalidArgument(fmt::format("KV block size {} is out of range (1..1024)", o.block_size));
  }
  if (o.type != TensorType::kF16 && o.type != TensorType::kF32 && o.type != TensorType::kQ8_0) {
    return Status::Unsupported("KV cache type must be f16, q8_0 or f32");
  }
  if (o.type == TensorType::kQ8_0 && c.head_dim % 32 != 0) {
    return Status::Unsupported(fmt::format("a q8_0 KV cache needs a head size divisible by 32 (this model's is {})", c.head_dim));
  }
  int64_t n_blocks = o.n_blocks > 0 ? o.n_blocks : (o.context_tokens + o.block_size - 1) / o.block_size;
  if (n_blocks <= 0) return Status::InvalidArgument("KV cache must hold at least one block");
  KvCache cache(backend, o.block_size, n_blocks);
  const int64_t rows = n_blocks * o.block_size, cols = int64_t{c.n_kv_heads} * c.head_dim;
  for (int l = 0; l < c.n_layers; ++l) {
    LMS_ASSIGN_OR_RETURN(TensorView k, backend.Allocate(o.type, rows, cols));
    LMS_ASSIGN_OR_RETURN(TensorView v, backend.Allocate(o.type, rows, cols));
    cache.k_.push_back(k);
    cache.v_.push_back(v);
  }
  return cache;
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (size_t l = 0; l < k_.size(); ++l) total += k_[l].rows * k_[l].row_stride * 2;
  return total;
}

Status KvCache::Reserve(KvSequence& seq, int32_t n_tokens) {
  const size_t need = (static_cast<size_t>(n_tokens) + block_size_ - 1) / block_size_;
  while (seq.blocks.size() < need) {
    int32_t b = pool_.Allocate();
    if (b < 0) {
      return Status::ResourceExhausted(fmt::format(
          "KV cache is full: {} tokens need {} blocks of {}, {} in the pool", n_tokens, need,
          block_size_, pool_.n_total()));
    }
    seq.blocks.push_back(b);
  }
  return Status::Ok();
}

void KvCache::CopyBlock(int32_t src, int32_t dst) {
  for (size_t l = 0; l < k_.size(); ++l) {
    for (const TensorView* t : {&k_[l], &v_[l]}) {
      const Status s = backend_->CopyRows(*t, int64_t{src} * block_size_, int64_t{dst} * block_size_, block_size_);
      if (!s.ok()) LogError("KV block copy failed: " + s.message());
      assert(s.ok());
    }
  }
}

void KvCache::Truncate(KvSequence& seq, int32_t n_tokens) {
  const size_t keep = (static_cast<size_t>(n_tokens) + block_size_ - 1) / block_size_;
  while (seq.blocks.size() > keep) {
    pool_.Free(seq.blocks.back());
    seq.blocks.pop_back();
  }
  if (seq.n_tokens > n_tokens) seq.n_tokens = n_tokens;
}

}  // namespace lms
