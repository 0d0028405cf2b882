// Packed, cache-blocked fp32 matrix product for the training ops: C (M×N) = [C +] A (M×K) · B (K×N).
//
// A and B are strided views, so one routine serves y = x·Wᵀ, dx = dy·W and dW = dyᵀ·x without
// copies beyond the packing. Panels of A (6 rows) and B (16 columns) are packed into contiguous
// buffers per K block (256) and multiplied by a register-tiled 6×16 micro-kernel (AVX2+FMA when
// the CPU has it, else a portable one with the same arithmetic).
//
// Determinism: every C element is one chain of fused multiply-adds over k in increasing order,
// starting from C (accumulate) or from zero. Blocking, packing and the split between threads only
// decide which element is computed where, never in which order it is summed — so results are
// bitwise the same for any thread count, any row range (micro-batch) and either micro-kernel.
#pragma once

#include <cstdint>

namespace lms {
class ThreadPool;
}

namespace lms::train {

// Element (i, j) is p[i * rs + j * cs].
struct MatView {
  const float* p;
  int64_t rs, cs;
};

// C (row stride ldc) = (accumulate ? C : 0) + A · B. pool may be null (runs on the caller);
// otherwise the larger of M and N is split across the pool's threads.
void Gemm(ThreadPool* pool, int64_t M, int64_t N, int64_t K, MatView A, MatView B, float* C,
          int64_t ldc, bool accumulate);

namespace gemm {
constexpr int kMR = 6, kNR = 16;
// c (kMR×kNR, row stride ldc) = (load ? c : 0) + Σ_p a[p*kMR + i] · b[p*kNR + j], p in order.
using MicroKernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                               bool load);
// The same with A read in place: rows a + i*lda, contiguous in p (no packing of A).
using MicroKernelRowsFn = void (*)(int64_t kc, const float* a, int64_t lda, const float* b,
                                   float* c, int64_t ldc, bool load);
void MicroKernelGeneric(int64_t, const float*, const float*, float*, int64_t, bool);
void MicroKernelAvx2(int64_t, const float*, const float*, float*, int64_t, bool);
void MicroKernelRowsGeneric(int64_t, const float*, int64_t, const float*, float*, int64_t, bool);
void MicroKernelRowsAvx2(int64_t, const float*, int64_t, const float*, float*, int64_t, bool);
// Forces the portable micro-kernel (tests compare the two); returns the previous setting.
bool UseGenericForTesting(bool on);
const char* MicroKernelName();
}  // namespace gemm

}  // namespace lms::train
