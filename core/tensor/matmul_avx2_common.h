// Inline helpers shared by the *_avx2.cpp kernel files. Include ONLY from files compiled with
// -mavx2 -mfma -mf16c (the build gives those flags to files named *_avx2.cpp).
// These files avoid standard-library templates: an out-of-line instantiation compiled with AVX2
// could be picked by the linker for code that runs before the CPU check.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace lms::kern::avx2 {

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float Hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int HsumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline float HalfToFloat(uint16_t h) { return _cvtsh_ss(h); }

template <typename T>
inline T Min(T a, T b) { return a < b ? a : b; }
template <typename T>
inline T Max(T a, T b) { return a < b ? b : a; }

}  // namespace lms::kern::avx2

#define LMS_UNROLL _Pragma("GCC unroll 16")
