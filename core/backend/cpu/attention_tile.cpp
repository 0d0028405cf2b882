#include "core/backend/cpu/attention_tile.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/backend/cpu/vec_math.h"
#include "core/tensor/fp16.h"
#include "core/tensor/quant.h"

namespace lms::cpu {
namespace {

// Converts cache row `j` of the tile's KV head into f32.
void LoadRow(const AttentionTile& t, const uint8_t* cache, int32_t j, float* dst) {
  const int64_t slot = int64_t{t.block_table[j / t.block_size]} * t.block_size + j % t.block_size;
  const uint8_t* row = cache + slot * t.row_stride;
  if (t.cache_type == TensorType::kF16) {
    F16ToF32(reinterpret_cast<const uint16_t*>(row) + t.kv_offset, dst, t.head_dim);
  } else if (t.cache_type == TensorType::kQ8_0) {
    DequantizeRow(TensorType::kQ8_0, row + RowBytes(TensorType::kQ8_0, t.kv_offset), dst, t.head_dim);
  } else {
    std::memcpy(dst, reinterpret_cast<const float*>(row) + t.kv_offset, t.head_dim * sizeof(float));
  }
}

void AttendTilePortable(const AttentionTile& t) {
  const int hd = t.head_dim;
  int32_t ctx = 0;
  for (int i = 0; i < t.nq; ++i) ctx = std::max(ctx, t.pos[i] + 1);
  const int32_t stride = ScoreStride(ctx);
  const bool f16 = t.cache_type == TensorType::kF16;
  for (int32_t j = 0; j < ctx; ++j) {
    LoadRow(t, t.k_cache, j, t.rows);
    for (int i = 0; i < t.nq; ++i) {
      if (j > t.pos[i]) continue;
      float s = 0;
      for (int d = 0; d < hd; ++d) s += (f16 ? RoundToFp16(t.q[i][d]) : t.q[i][d]) * t.rows[d];
      t.scores[i * stride + j] = s * t.scale;
    }
  }
  for (int i = 0; i < t.nq; ++i) {
    float* sc = t.scores + i * stride;
    const int32_t n = t.pos[i] + 1;
    const float mx = *std::max_element(sc, sc + n);
    const float inv = 1.0f / ExpShiftSum(sc, n, mx);
    for (int32_t j = 0; j < n; ++j) sc[j] *= inv;
    std::memset(t.out[i], 0, hd * sizeof(float));
  }
  for (int32_t j = 0; j < ctx; ++j) {
    LoadRow(t, t.v_cache, j, t.rows);
    for (int i = 0; i < t.nq; ++i) {
      if (j > t.pos[i]) continue;
      const float p = t.scores[i * stride + j];
      for (int d = 0; d < hd; ++d) t.out[i][d] += p * t.rows[d];
    }
  }
}

}  // namespace

void AttendTile(const AttentionTile& t) {
  if (HaveAvx2() && t.head_dim % 8 == 0) return avx2::AttendTile(t);
  AttendTilePortable(t);
}

}  // namespace lms::cpu
