// Small vector routines the CPU backend's ops are built from, with an AVX2 path chosen at run
// time and a portable path that is always correct. Every routine's reduction order depends only
// on n, never on how many rows a batch holds, so results are batch-invariant.
#pragma once

#include <cstdint>

namespace lms::cpu {

bool HaveAvx2();  // AVX2 + FMA + F16C usable on this CPU

float DotF32(const float* a, const float* b, int n);
float DotF16F32(const uint16_t* a, const float* b, int n);   // a is IEEE half
void AxpyF16(float alpha, const uint16_t* x, float* y, int n); // y += alpha * x
void AxpyF32(float alpha, const float* x, float* y, int n);
void ScaleF32(float* y, float alpha, int n);
void SiluMul(const float* gate, const float* up, float* out, int n);  // out = silu(gate) * up
// x[i] = exp(x[i] - max); returns the sum (the caller divides).
float ExpShiftSum(float* x, int n, float max);
void F32ToF16(const float* src, uint16_t* dst, int n);
void F16ToF32(const uint16_t* src, float* dst, int n);
double SumSquares(const float* x, int n);

namespace avx2 {
float DotF32(const float* a, const float* b, int n);
float DotF16F32(const uint16_t* a, const float* b, int n);
void AxpyF16(float alpha, const uint16_t* x, float* y, int n);
void AxpyF32(float alpha, const float* x, float* y, int n);
void SiluMul(const float* gate, const float* up, float* out, int n);
float ExpShiftSum(float* x, int n, float max);
void F32ToF16(const float* src, uint16_t* dst, int n);
void F16ToF32(const uint16_t* src, float* dst, int n);
}  // namespace avx2

}  // namespace lms::cpu
