// AVX2 kernels for the 256-element K-quant formats (Q4_K, Q6_K) x Q8_K-style activations.
//
// Per (weight row, activation row, super-block): the 6/8-bit integer sub-block scales are
// applied in the integer domain (madd of the maddubs int16 products by the scale), so a whole
// super-block reduces to one int32 vector, converted once and accumulated with one FMA:
//   Q4_K: acc += cvt(sum_s sc[s] * q.a) * (d * d_a);   accm += cvt(sum_s mn[s] * bsum_s) * (dmin * d_a)
//         y = hsum(acc) - hsum(accm)
//   Q6_K: q in 0..63 stored, value q - 32:  isum = sum_g sc[g] * (q.a)_g - 32 * sum_g sc[g] * bsum_g
//         acc += cvt(isum) * (d * d_a);   y = hsum(acc)
// Tiles are 1 weight row x C activation rows (the weight unpacking is shared by the C rows);
// every output runs the same operations in the same order whatever the tile, so results are
// batch-invariant. (K-quants are not on the hot path of the models we benchmark; these kernels
// favour simplicity over the last few percent.)
#include "core/tensor/matmul_avx2_common.h"
#include "core/tensor/matmul_internal.h"
#include "core/tensor/quant_blocks.h"

namespace lms::kern {
namespace {

using namespace quant;
using namespace avx2;

constexpr int kTileC = 4;

struct Q8KRow {
  const int8_t* q;
  const float* d;
  const int16_t* bsums;
};
inline Q8KRow GetRow(const uint8_t* act, const ActLayout& L, int64_t i) {
  const uint8_t* row = act + static_cast<size_t>(i) * L.stride;
  return {reinterpret_cast<const int8_t*>(row + L.qs), reinterpret_cast<const float*>(row + L.d),
          reinterpret_cast<const int16_t*>(row + L.bsums)};
}

inline __m256i LoadI(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

template <int C>
void TileQ4K(const BlockQ4_K* x, const uint8_t* act, const ActLayout& L, int64_t i0, float* y, int64_t ldy) {
  Q8KRow a[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) a[c] = GetRow(act, L, i0 + c);
  __m256 acc[C], accm[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = accm[c] = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < L.blocks; ++b) {
    uint8_t sc[8], mn[8];
    UnpackQ4KScales(x[b].scales, sc, mn);
    // Mins duplicated per pair of 16-sums: lane 2s and 2s+1 hold mn[s].
    alignas(32) int16_t mn16[16];
    for (int s = 0; s < 8; ++s) mn16[2 * s] = mn16[2 * s + 1] = mn[s];
    const __m256i mins = _mm256_load_si256(reinterpret_cast<const __m256i*>(mn16));
    const float d = HalfToFloat(x[b].d), dmin = HalfToFloat(x[b].dmin);
    __m256i isum[C];
    LMS_UNROLL for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
    LMS_UNROLL for (int j = 0; j < 4; ++j) {
      const __m256i q = LoadI(x[b].qs + 32 * j);
      const __m256i lo = _mm256_and_si256(q, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      const __m256i s_lo = _mm256_set1_epi16(sc[2 * j]), s_hi = _mm256_set1_epi16(sc[2 * j + 1]);
      LMS_UNROLL for (int c = 0; c < C; ++c) {
        const int8_t* q8 = a[c].q + b * kQKK + 64 * j;
        const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, LoadI(q8)), s_lo);
        const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, LoadI(q8 + 32)), s_hi);
        isum[c] = _mm256_add_epi32(isum[c], _mm256_add_epi32(p_lo, p_hi));
      }
    }
    LMS_UNROLL for (int c = 0; c < C; ++c) {
      const __m256i msum = _mm256_madd_epi16(LoadI(a[c].bsums + b * 16), mins);
      const float da = a[c].d[b];
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(d * da), acc[c]);
      accm[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * da), accm[c]);
    }
  }
  LMS_UNROLL for (int c = 0; c < C; ++c) y[(i0 + c) * ldy] = Hsum(acc[c]) - Hsum(accm[c]);
}

template <int C>
void TileQ6K(const BlockQ6_K* x, const uint8_t* act, const ActLayout& L, int64_t i0, float* y, int64_t ldy) {
  Q8KRow a[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) a[c] = GetRow(act, L, i0 + c);
  __m256 acc[C];
  LMS_UNROLL for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  for (int64_t b = 0; b < L.blocks; ++b) {
    const int8_t* sc = x[b].scales;
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    const float d = HalfToFloat(x[b].d);
    __m256i isum[C];
    LMS_UNROLL for (int c = 0; c < C; ++c) isum[c] = _mm256_setzero_si256();
    LMS_UNROLL for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = LoadI(x[b].ql + 64 * h), ql1 = LoadI(x[b].ql + 64 * h + 32);
      const __m256i qh = LoadI(x[b].qh + 32 * h);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, bits45));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                             _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45));
      LMS_UNROLL for (int i = 0; i < 4; ++i) {
        // Elements 0..15 of this 32 use scale g, 16..31 scale g+1 (maddubs keeps them in the
        // low and high 128-bit halves).
        const int g = 8 * h + 2 * i;
        const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[g + 1]), _mm_set1_epi16(sc[g]));
        LMS_UNROLL for (int c = 0; c < C; ++c) {
          const __m256i p = _mm256_maddubs_epi16(q[i], LoadI(a[c].q + b * kQKK + 128 * h + 32 * i));
          isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, s));
        }
      }
    }
    LMS_UNROLL for (int c = 0; c < C; ++c) {
      const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(LoadI(a[c].bsums + b * 16), sc16), 5);
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(isum[c], offset)), _mm256_set1_ps(d * a[c].d[b]),
                               acc[c]);
    }
  }
  LMS_UNROLL for (int c = 0; c < C; ++c) y[(i0 + c) * ldy] = Hsum(acc[c]);
}

template <typename Block, void (*T1)(const Block*, const uint8_t*, const ActLayout&, int64_t, float*, int64_t),
          void (*T2)(const Block*, const uint8_t*, const ActLayout&, int64_t, float*, int64_t),
          void (*T3)(const Block*, const uint8_t*, const ActLayout&, int64_t, float*, int64_t),
          void (*T4)(const Block*, const uint8_t*, const ActLayout&, int64_t, float*, int64_t)>
void MatMulK(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
             int64_t m, float* y, int64_t ldy) {
  // Chunks of rows small enough to stay in L2 while every activation tile passes over them.
  const size_t row_bytes = static_cast<size_t>(L.blocks) * sizeof(Block);
  const int64_t chunk = m <= kTileC ? 1 : Max<int64_t>(1, static_cast<int64_t>((128 * 1024) / row_bytes));
  for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
    const int64_t c1 = Min(n1, c0 + chunk);
    for (int64_t i0 = 0; i0 < m; i0 += kTileC) {
      const int64_t cc = Min<int64_t>(kTileC, m - i0);
      for (int64_t j = c0; j < c1; ++j) {
        const Block* x = reinterpret_cast<const Block*>(w + static_cast<size_t>(j) * w_stride);
        float* yj = y + j;
        switch (cc) {
          case 1: T1(x, act, L, i0, yj, ldy); break;
          case 2: T2(x, act, L, i0, yj, ldy); break;
          case 3: T3(x, act, L, i0, yj, ldy); break;
          default: T4(x, act, L, i0, yj, ldy); break;
        }
      }
    }
  }
}

}  // namespace

void MatMulQ4_KAvx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  MatMulK<BlockQ4_K, TileQ4K<1>, TileQ4K<2>, TileQ4K<3>, TileQ4K<4>>(w, w_stride, n0, n1, act, L, m, y, ldy);
}
void MatMulQ6_KAvx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                    int64_t m, float* y, int64_t ldy) {
  MatMulK<BlockQ6_K, TileQ6K<1>, TileQ6K<2>, TileQ6K<3>, TileQ6K<4>>(w, w_stride, n0, n1, act, L, m, y, ldy);
}

}  // namespace lms::kern
