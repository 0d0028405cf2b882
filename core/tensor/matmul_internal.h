// Internals shared by the matmul dispatcher (matmul.cpp), the scalar reference kernels
// (matmul_scalar.cpp) and the AVX2 kernels (matmul_avx2.cpp). Not part of the public API.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor/types.h"

namespace lms::kern {

// How one prepared activation row is laid out (all offsets in bytes from the row start; the
// row stride is a multiple of 64). Every ISA writes exactly the same bytes.
enum class ActFormat {
  kF32,  // k floats
  kQ8,   // per 32 elements: int8 q, float d (x ~= q*d), float s = d * sum(q), int32 sum(q)
  kQ8K,  // per 256 elements: int8 q, float d; per 16 elements: int16 sum(q)
};
struct ActLayout {
  ActFormat format = ActFormat::kF32;
  int64_t k = 0;
  int64_t blocks = 0;      // kQ8: k/32; kQ8K: k/256; kF32: 0
  int64_t blocks_pad = 0;  // blocks rounded up to 8; d and s arrays are zero-padded to it
  size_t qs = 0;           // int8[k]           (kQ8, kQ8K)
  size_t d = 0;            // float[blocks_pad] (kQ8, kQ8K)
  size_t s = 0;            // float[blocks_pad] (kQ8)
  size_t qsum = 0;         // int32[blocks_pad] (kQ8)
  size_t bsums = 0;        // int16[k/16]       (kQ8K)
  size_t stride = 0;
};
ActLayout GetActLayout(TensorType wt, int64_t k);

// Converts rows [r0, r1) of x into the prepared buffer `act` (row r at act + r*stride).
using PrepareFn = void (*)(const float* x, int64_t ldx, int64_t r0, int64_t r1, const ActLayout& L,
                           uint8_t* act);
// Y columns [n0, n1) for all m prepared rows.
using MatMulFn = void (*)(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                          const ActLayout& L, int64_t m, float* y, int64_t ldy);
struct TypeKernels {
  PrepareFn prepare = nullptr;
  MatMulFn matmul = nullptr;
};

// The canonical per-output arithmetic of the 32-block formats (Q8_0, Q4_0, Q4_1), which every
// kernel reproduces exactly: with isum_b the exact integer dot of block b (for Q4_0 with the
// "-8" folded in: sum((q-8)*a)),
//   y = 0;  for b in order:  y = fma(float(isum_b) * d_act[b], d_w[b], y);
//                            Q4_1 only:  y = fma(m_w[b], s_act[b], y);
// SIMD kernels run 8 outputs in the 8 lanes of a vector with exactly these operations, so the
// scalar and AVX2 results are bit-identical too.

// Kernel sets; a null member means "no kernel for this type in this set".
TypeKernels ScalarKernels(TensorType wt);
TypeKernels Avx2Kernels(TensorType wt);

// Reference quantization of one activation row (shared rounding rules, see matmul_scalar.cpp).
void PrepareRowScalar(const float* x, const ActLayout& L, uint8_t* out);

// AVX2 kernels (defined in the *_avx2.cpp files; call only when the CPU has AVX2+FMA+F16C).
void MatMulF32Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                   const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulF16Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                   const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulBF16Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                    const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulQ8_0Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                    const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulQ4_0Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                    const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulQ4_1Avx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                    const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulQ4_KAvx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                    const ActLayout& L, int64_t m, float* y, int64_t ldy);
void MatMulQ6_KAvx2(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act,
                    const ActLayout& L, int64_t m, float* y, int64_t ldy);

// Prepacked weights (Q8_0, Q4_0, Q4_1), see matmul.h and matmul_prepacked.cpp: bytes of one
// group of 8 rows, and the AVX2 kernel over them (columns [n0, n1), n0 a multiple of 8).
size_t PackedGroupBytes(TensorType wt, int64_t k);
void MatMulPrepackedAvx2(TensorType wt, const uint8_t* packed, int64_t n, int64_t n0, int64_t n1, const uint8_t* act,
                         const ActLayout& L, int64_t m, float* y, int64_t ldy);

// A per-thread float buffer of at least n elements, reused across calls (kernels keep converted
// weight scales there). Valid until the same thread asks again.
float* ThreadScratchFloats(size_t n);

inline int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace lms::kern
