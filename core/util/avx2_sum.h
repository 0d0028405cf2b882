// The sum of an AVX2 float vector's 8 lanes, in one fixed order (callers' results depend on it).
// Include only from translation units compiled for AVX2 (the *_avx2.cpp files).
#pragma once

#include <immintrin.h>

namespace lms::avx2 {

inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

}  // namespace lms::avx2
