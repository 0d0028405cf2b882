// The CPU attention kernel. One call handles a tile: up to kMaxTileQueries query vectors that
// share one KV head of one sequence (several query heads of a GQA group, several tokens).
// Each key and value row is read and converted once per tile instead of once per query.
//
// With an f16 cache, queries are rounded to f16 before the dot products (llama.cpp's CPU
// backend converts them to the cache type), which keeps greedy decoding close to its choices.
// A Q8_0 cache (blocks of 32 elements with one f16 scale, ggml's layout) is dequantized to f32
// row by row; queries stay f32.
//
// Batch invariance: a query's scores, softmax and weighted sum are computed with the same
// instruction sequence whatever else is in its tile, so results do not depend on batching.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor/types.h"

namespace lms::cpu {

constexpr int kMaxTileQueries = 32;
constexpr int kKeyChunk = 8;  // keys processed together

struct AttentionTile {
  int nq = 0;
  const float* q[kMaxTileQueries];  // head_dim floats each
  float* out[kMaxTileQueries];      // head_dim floats each
  int32_t pos[kMaxTileQueries];     // query i attends to keys [0, pos[i]]
  const int32_t* block_table = nullptr;
  int32_t block_size = 16;
  const uint8_t* k_cache = nullptr;  // rows of n_kv_heads * head_dim elements of cache_type
  const uint8_t* v_cache = nullptr;
  size_t row_stride = 0;             // bytes between cache rows
  int32_t kv_offset = 0;             // element offset of this KV head within a row
  TensorType cache_type = TensorType::kF16;  // F16, F32 or Q8_0 (then head_dim % 32 == 0)
  int32_t head_dim = 64;
  float scale = 1.0f;
  // Scratch owned by the caller: scores needs nq * ScoreStride(max pos + 1) floats, rows
  // needs kKeyChunk * head_dim floats.
  float* scores = nullptr;
  float* rows = nullptr;
};

inline int32_t ScoreStride(int32_t ctx) { return (ctx + kKeyChunk - 1) / kKeyChunk * kKeyChunk; }

void AttendTile(const AttentionTile& t);

namespace avx2 {
void AttendTile(const AttentionTile& t);  // REQUIRES: head_dim % 8 == 0
}

}  // namespace lms::cpu
