// AVX2+FMA builds of the training kernels (compiled with -mavx2 -mfma; chosen at run time).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/train/train_kernels.h"
#include "core/util/avx2_sum.h"

namespace lms::train::kern::avx2 {
namespace {

using lms::avx2::HorizontalSum;

// R rows of a against NW rows of w. Every element: 8 lane-wise FMA chains over k (step 8), a
// fixed horizontal sum, then a scalar FMA chain over the k tail — the same for any R and NW.
template <int R, int NW>
inline void DotTile(float* out, int64_t ldo, const float* a, int64_t lda, const float* w, int64_t K) {
  __m256 acc[R][NW];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NW; ++n) acc[r][n] = _mm256_setzero_ps();
  const int64_t K8 = K & ~int64_t{7};
  for (int64_t k = 0; k < K8; k += 8) {
    __m256 wv[NW];
    for (int n = 0; n < NW; ++n) wv[n] = _mm256_loadu_ps(w + n * K + k);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_loadu_ps(a + r * lda + k);
      for (int n = 0; n < NW; ++n) acc[r][n] = _mm256_fmadd_ps(av, wv[n], acc[r][n]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int n = 0; n < NW; ++n) {
      float s = HorizontalSum(acc[r][n]);
      for (int64_t k = K8; k < K; ++k) s = std::fma(a[r * lda + k], w[n * K + k], s);
      out[r * ldo + n] = s;
    }
  }
}

template <int R>
inline void DotRowBlock(float* out, int64_t ldo, const float* a, int64_t lda, const float* w,
                        int64_t n0, int64_t n1, int64_t K) {
  int64_t n = n0;
  for (; n + 3 <= n1; n += 3) DotTile<R, 3>(out + n, ldo, a, lda, w + n * K, K);
  for (; n + 2 <= n1; n += 2) DotTile<R, 2>(out + n, ldo, a, lda, w + n * K, K);
  for (; n < n1; ++n) DotTile<R, 1>(out + n, ldo, a, lda, w + n * K, K);
}

// R rows of c, columns [k, k + 8*V): chains of FMAs over j in order.
template <int R, int V>
inline void AccumTile(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_js,
                      const float* b, int64_t ldb, int64_t j0, int64_t j1) {
  __m256 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = _mm256_loadu_ps(c + r * ldc + 8 * v);
  for (int64_t j = j0; j < j1; ++j) {
    __m256 bv[V];
    for (int v = 0; v < V; ++v) bv[v] = _mm256_loadu_ps(b + j * ldb + 8 * v);
    for (int r = 0; r < R; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + r * a_rs + j * a_js);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
}

template <int R>
inline void AccumRowBlock(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_js,
                          const float* b, int64_t ldb, int64_t K, int64_t j0, int64_t j1) {
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) AccumTile<R, 2>(c + k, ldc, a, a_rs, a_js, b + k, ldb, j0, j1);
  for (; k + 8 <= K; k += 8) AccumTile<R, 1>(c + k, ldc, a, a_rs, a_js, b + k, ldb, j0, j1);
  for (; k < K; ++k) {
    for (int r = 0; r < R; ++r) {
      float s = c[r * ldc + k];
      for (int64_t j = j0; j < j1; ++j) s = std::fma(a[r * a_rs + j * a_js], b[j * ldb + k], s);
      c[r * ldc + k] = s;
    }
  }
}

}  // namespace

void DotRows(float* out, int64_t ldo, const float* a, int64_t lda, const float* w, int64_t r0,
             int64_t r1, int64_t N, int64_t K) {
  // Blocks of w rows small enough to stay in L2 while every row of a passes over them.
  const int64_t nb = std::max<int64_t>(6, (128 * 1024 / 4) / std::max<int64_t>(K, 1) / 6 * 6);
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t n1 = std::min(N, n0 + nb);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) DotRowBlock<4>(out + r * ldo, ldo, a + r * lda, lda, w, n0, n1, K);
    for (; r < r1; ++r) DotRowBlock<1>(out + r * ldo, ldo, a + r * lda, lda, w, n0, n1, K);
  }
}

void AccumOuter(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_js, const float* b,
                int64_t ldb, int64_t r0, int64_t r1, int64_t K, int64_t J) {
  // Blocks of b rows kept in cache across row tiles; each element still sums j in order.
  const int64_t jb = std::max<int64_t>(16, (192 * 1024 / 4) / std::max<int64_t>(K, 1));
  for (int64_t j0 = 0; j0 < J; j0 += jb) {
    const int64_t j1 = std::min(J, j0 + jb);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) AccumRowBlock<4>(c + r * ldc, ldc, a + r * a_rs, a_rs, a_js, b, ldb, K, j0, j1);
    for (; r < r1; ++r) AccumRowBlock<1>(c + r * ldc, ldc, a + r * a_rs, a_rs, a_js, b, ldb, K, j0, j1);
  }
}

}  // namespace lms::train::kern::avx2
