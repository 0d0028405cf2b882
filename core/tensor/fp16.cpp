#include "core/tensor/fp16.h"

namespace lms {

float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mant << 13));  // inf / NaN (payload kept)
  if (exp != 0) return BitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24, exact in float.
  const float mag = static_cast<float>(mant) * BitsToFloat(0x33800000u);  // 2^-24
  return BitsToFloat(sign | FloatBits(mag));
}

uint16_t Fp32ToFp16(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((a >> 13) & 0x1ffu);  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity (ties to even)
  if (a < 0x38800000u) {
    // Below the smallest normal half (2^-14): adding 0.5 puts the value where the float ulp is
    // exactly 2^-24 (the half subnormal step), so the FPU does the ties-to-even rounding.
    const float r = BitsToFloat(a) + 0.5f;
    return sign | static_cast<uint16_t>(FloatBits(r) - 0x3f000000u);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to even;
  // a carry out of the mantissa correctly bumps the exponent.
  const uint32_t odd = (a >> 13) & 1u;
  a += 0xc8000fffu + odd;  // -(112 << 23) + 0xfff + odd, modulo 2^32
  return sign | static_cast<uint16_t>(a >> 13);
}

void Fp16RowToFp32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(src[i]);
}
void Fp32RowToFp16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}
void Bf16RowToFp32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFp32(src[i]);
}
void Fp32RowToBf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp32ToBf16(src[i]);
}

}  // namespace lms
