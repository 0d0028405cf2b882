// AVX2+FMA build of the AdamW update loop (compiled with -mavx2 -mfma; chosen at run time).
#include <immintrin.h>

#include <cmath>

#include "core/train/optimizer.h"

namespace lms::train::avx2 {

void AdamWUpdate(const AdamWScalars& s, float* p, float* g, float* m, float* v, const uint8_t* decay,
                 int64_t n) {
  const __m256 clip = _mm256_set1_ps(s.clip), b1 = _mm256_set1_ps(s.beta1), b2 = _mm256_set1_ps(s.beta2);
  const __m256 ob1 = _mm256_set1_ps(1.0f - s.beta1), ob2 = _mm256_set1_ps(1.0f - s.beta2);
  const __m256 bc1 = _mm256_set1_ps(s.bc1), bc2 = _mm256_set1_ps(s.bc2), lr = _mm256_set1_ps(s.lr);
  const __m256 eps = _mm256_set1_ps(s.eps), wd = _mm256_set1_ps(s.weight_decay);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), clip);
    _mm256_storeu_ps(g + i, gi);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(ob1, gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(ob2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 mhat = _mm256_div_ps(mi, bc1), vhat = _mm256_div_ps(vi, bc2);
    const __m256 pi = _mm256_loadu_ps(p + i);
    // Weight decay where decay[i] != 0: widen 8 flag bytes to a lane mask.
    const __m128i flags = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(decay + i));
    const __m256 on = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_cvtepu8_epi32(flags), _mm256_setzero_si256()));
    const __m256 dec = _mm256_and_ps(on, _mm256_mul_ps(wd, pi));
    const __m256 upd = _mm256_add_ps(_mm256_div_ps(mhat, _mm256_add_ps(_mm256_sqrt_ps(vhat), eps)), dec);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(pi, _mm256_mul_ps(lr, upd)));
  }
  for (; i < n; ++i) {
    const float gi = g[i] * s.clip;
    g[i] = gi;
    m[i] = s.beta1 * m[i] + (1.0f - s.beta1) * gi;
    v[i] = s.beta2 * v[i] + (1.0f - s.beta2) * gi * gi;
    const float mhat = m[i] / s.bc1, vhat = v[i] / s.bc2;
    p[i] -= s.lr * (mhat / (std::sqrt(vhat) + s.eps) + (decay[i] ? s.weight_decay * p[i] : 0.0f));
  }
}

double SumSquares(const float* g, int64_t n) {
  // Four double lanes, each summing every fourth element in order, then added in a fixed order.
  __m256d acc = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
    acc = _mm256_fmadd_pd(x, x, acc);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, acc);
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) s += double{g[i]} * g[i];
  return s;
}

}  // namespace lms::train::avx2
