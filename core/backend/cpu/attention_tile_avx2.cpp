// AVX2 attention tile: keys and values are converted to f32 eight rows at a time; each query's
// eight scores are reduced together with a horizontal-add tree.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/backend/cpu/attention_tile.h"
#include "core/backend/cpu/vec_math.h"
#include "core/tensor/fp16.h"
#include "core/tensor/quant_blocks.h"

namespace lms::cpu::avx2 {
namespace {

void LoadRows(const AttentionTile& t, const uint8_t* cache, int32_t j0, int n, float* dst) {
  const int hd = t.head_dim;
  for (int l = 0; l < n; ++l) {
    const int32_t j = j0 + l;
    const int64_t slot = int64_t{t.block_table[j / t.block_size]} * t.block_size + j % t.block_size;
    const uint8_t* row = cache + slot * t.row_stride;
    float* d = dst + l * hd;
    if (t.cache_type == TensorType::kF16) {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(row) + t.kv_offset;
      for (int i = 0; i < hd; i += 8) {
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
      }
    } else if (t.cache_type == TensorType::kQ8_0) {
      // x = q * d per block of 32, the same product the portable dequantizer computes.
      const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row) + t.kv_offset / quant::kQK;
      for (int blk = 0; blk < hd / quant::kQK; ++blk) {
        const __m256 scale = _mm256_set1_ps(Fp16ToFp32(b[blk].d));
        for (int i = 0; i < quant::kQK; i += 8) {
          const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[blk].qs + i));
          _mm256_storeu_ps(d + blk * quant::kQK + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale));
        }
      }
    } else {
      std::memcpy(d, reinterpret_cast<const float*>(row) + t.kv_offset, hd * sizeof(float));
    }
  }
  for (int l = n; l < kKeyChunk; ++l) std::memset(dst + l * hd, 0, hd * sizeof(float));
}

// Returns the 8 horizontal sums of a0..a7 as one vector, lane l = sum of a_l.
inline __m256 Reduce8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6,
                      __m256 a7) {
  __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
  __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
  t0 = _mm256_hadd_ps(t0, t1);  // lanes: s0 s1 s2 s3 (low half) | s0 s1 s2 s3 (high half)
  t2 = _mm256_hadd_ps(t2, t3);  //        s4 s5 s6 s7           | s4 s5 s6 s7
  __m256 lo = _mm256_permute2f128_ps(t0, t2, 0x20), hi = _mm256_permute2f128_ps(t0, t2, 0x31);
  return _mm256_add_ps(lo, hi);
}

}  // namespace

void AttendTile(const AttentionTile& t) {
  const int hd = t.head_dim;
  int32_t ctx = 0;
  for (int i = 0; i < t.nq; ++i) ctx = std::max(ctx, t.pos[i] + 1);
  const int32_t stride = ScoreStride(ctx);
  const __m256 vscale = _mm256_set1_ps(t.scale);
  const bool f16 = t.cache_type == TensorType::kF16;
  // Scores: S[i][j] = scale * q_i · k_j, eight keys at a time.
  for (int32_t j0 = 0; j0 < ctx; j0 += kKeyChunk) {
    const int n = std::min<int32_t>(kKeyChunk, ctx - j0);
    LoadRows(t, t.k_cache, j0, n, t.rows);
    const float* k = t.rows;
    for (int i = 0; i < t.nq; ++i) {
      if (j0 > t.pos[i]) continue;
      const float* q = t.q[i];
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
      for (int d = 0; d < hd; d += 8) {
        __m256 qv = _mm256_loadu_ps(q + d);
        // With an f16 cache the query is rounded to f16 too, as llama.cpp's CPU attention does.
        if (f16) qv = _mm256_cvtph_ps(_mm256_cvtps_ph(qv, _MM_FROUND_TO_NEAREST_INT));
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 0 * hd + d), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 1 * hd + d), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 2 * hd + d), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 3 * hd + d), a3);
        a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 4 * hd + d), a4);
        a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 5 * hd + d), a5);
        a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 6 * hd + d), a6);
        a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 7 * hd + d), a7);
      }
      _mm256_storeu_ps(t.scores + i * stride + j0, _mm256_mul_ps(Reduce8(a0, a1, a2, a3, a4, a5, a6, a7), vscale));
    }
  }
  // Softmax over each query's own keys [0, pos]; probabilities are normalised in place.
  for (int i = 0; i < t.nq; ++i) {
    float* sc = t.scores + i * stride;
    const int32_t n = t.pos[i] + 1;
    const float mx = *std::max_element(sc, sc + n);
    const float inv = 1.0f / ExpShiftSum(sc, n, mx);
    const __m256 vinv = _mm256_set1_ps(inv);
    int32_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(sc + j, _mm256_mul_ps(_mm256_loadu_ps(sc + j), vinv));
    for (; j < n; ++j) sc[j] *= inv;
    std::memset(t.out[i], 0, hd * sizeof(float));
  }
  // Weighted sum of values, accumulated key by key in order.
  for (int32_t j0 = 0; j0 < ctx; j0 += kKeyChunk) {
    const int n = std::min<int32_t>(kKeyChunk, ctx - j0);
    LoadRows(t, t.v_cache, j0, n, t.rows);
    for (int i = 0; i < t.nq; ++i) {
      const int m = std::min<int32_t>(n, t.pos[i] + 1 - j0);
      if (m <= 0) continue;
      const float* p = t.scores + i * stride + j0;
      float* o = t.out[i];
      for (int d = 0; d < hd; d += 8) {
        __m256 acc = _mm256_loadu_ps(o + d);
        for (int l = 0; l < m; ++l) acc = _mm256_fmadd_ps(_mm256_set1_ps(p[l]), _mm256_loadu_ps(t.rows + l * hd + d), acc);
        _mm256_storeu_ps(o + d, acc);
      }
    }
  }
}

}  // namespace lms::cpu::avx2
