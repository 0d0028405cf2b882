// Scalar conversions between float and the 16-bit float formats stored in model files:
// IEEE binary16 ("F16", also the scale type of every ggml quant block) and bfloat16 ("BF16").
// Both narrowing conversions round to nearest, ties to even; NaN stays NaN (quiet), overflow
// in F16 becomes infinity. These are the portable reference; row kernels may use F16C.
#pragma once

#include <cstdint>
#include <cstring>

namespace lms {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float Fp16ToFp32(uint16_t h);
uint16_t Fp32ToFp16(float f);
// f rounded to the nearest fp16 value (as a float).
inline float RoundToFp16(float f) { return Fp16ToFp32(Fp32ToFp16(f)); }

inline float Bf16ToFp32(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }
inline uint16_t Fp32ToBf16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

// Row conversions (n elements, any n).
void Fp16RowToFp32(const uint16_t* src, float* dst, int64_t n);
void Fp32RowToFp16(const float* src, uint16_t* dst, int64_t n);
void Bf16RowToFp32(const uint16_t* src, float* dst, int64_t n);
void Fp32RowToBf16(const float* src, uint16_t* dst, int64_t n);

}  // namespace lms
