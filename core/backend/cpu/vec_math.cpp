#include "core/backend/cpu/vec_math.h"

#include <cmath>

#include "core/tensor/fp16.h"

namespace lms::cpu {

bool HaveAvx2() {
  static const bool have = [] {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return false;
#endif
  }();
  return have;
}

float DotF32(const float* a, const float* b, int n) {
  if (HaveAvx2()) return avx2::DotF32(a, b, n);
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float DotF16F32(const uint16_t* a, const float* b, int n) {
  if (HaveAvx2()) return avx2::DotF16F32(a, b, n);
  float s = 0;
  for (int i = 0; i < n; ++i) s += Fp16ToFp32(a[i]) * b[i];
  return s;
}

void AxpyF16(float alpha, const uint16_t* x, float* y, int n) {
  if (HaveAvx2()) return avx2::AxpyF16(alpha, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += alpha * Fp16ToFp32(x[i]);
}

void AxpyF32(float alpha, const float* x, float* y, int n) {
  if (HaveAvx2()) return avx2::AxpyF32(alpha, x, y, n);
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void ScaleF32(float* y, float alpha, int n) {
  for (int i = 0; i < n; ++i) y[i] *= alpha;
}

void SiluMul(const float* gate, const float* up, float* out, int n) {
  if (HaveAvx2()) return avx2::SiluMul(gate, up, out, n);
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

float ExpShiftSum(float* x, int n, float max) {
  if (HaveAvx2()) return avx2::ExpShiftSum(x, n, max);
  float s = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    s += x[i];
  }
  return s;
}

void F32ToF16(const float* src, uint16_t* dst, int n) {
  if (HaveAvx2()) return avx2::F32ToF16(src, dst, n);
  for (int i = 0; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

void F16ToF32(const uint16_t* src, float* dst, int n) {
  if (HaveAvx2()) return avx2::F16ToF32(src, dst, n);
  for (int i = 0; i < n; ++i) dst[i] = Fp16ToFp32(src[i]);
}

double SumSquares(const float* x, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

}  // namespace lms::cpu
