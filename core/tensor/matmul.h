// Matrix multiplication for linear layers on the CPU:  Y[i][j] = sum_k X[i][k] * W[j][k].
//
//   W: n rows of k elements of weight type wt (a model tensor as stored in the GGUF file),
//      row j at (const uint8_t*)w + j * w_stride.
//   X: m rows of k floats, row i at x + i * ldx.      Y: m rows, Y[i][j] at y[i * ldy + j].
//
// Two phases so the caller (the forward pass) owns threading:
//   1) PrepareActivationRows converts X once into the format the weight type's kernel consumes
//      (8-bit blocks with scales for quantized weights, f32 for float weights) in a scratch
//      buffer of ActivationBytes(wt, m, k) bytes. Threads may split rows between them.
//   2) MatMulPrepared computes output columns [n_begin, n_end) for all m rows; threads take
//      disjoint column ranges (fastest when range boundaries are multiples of 8: the quantized
//      kernels work on groups of 8 weight rows). Both phases are thread-safe for disjoint ranges.
// Scratch alignment: any, but 64-byte aligned is fastest.
//
// Batch invariance (a contract the serving engine relies on): within one process (one ISA
// choice), Y[i][j] is bit-identical whatever m is, whichever rows share the call, and however
// [n_begin, n_end) is split. Every output accumulates its k-blocks in the same order with the
// same instructions, whichever tile of the register-blocked kernel computed it.
//
// Kernels: a portable scalar reference (always available) and AVX2+FMA+F16C kernels chosen at
// run time. Quantized weights multiply against activations quantized to 8 bits per block of 32
// (Q8_0/Q4_0/Q4_1) or 256 (Q4_K/Q6_K), as ggml does; float weights multiply f32 activations.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor/types.h"
#include "core/util/status.h"

namespace lms {

enum class KernelIsa { kScalar = 0, kAvx2 = 1 };
const char* KernelIsaName(KernelIsa isa);
// The best instruction set this CPU supports (checked once with __builtin_cpu_supports).
KernelIsa DetectedKernelIsa();
// The instruction set the kernels use now: DetectedKernelIsa() unless overridden.
KernelIsa ActiveKernelIsa();
// Tests and benchmarks: force a kernel set (clamped to what the CPU supports). Not to be
// called while another thread is inside a kernel. Also settable with LMS_KERNELS=scalar.
void SetKernelIsa(KernelIsa isa);

// Weight types with matmul kernels: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K.
bool CanMatMul(TensorType wt);
// Ok when a weight of type wt with rows of k elements can be multiplied (type supported, k > 0,
// k a multiple of the type's block size). Call once per tensor at load time; the functions
// below only assert.
Status ValidateMatMul(TensorType wt, int64_t k);

// Scratch bytes for m prepared activation rows of length k.
size_t ActivationBytes(TensorType wt, int64_t m, int64_t k);
// Converts rows [row_begin, row_end) of X (row i at x + i*ldx) into `prepared`, which is the
// scratch for the whole batch (the same pointer for every range).
void PrepareActivationRows(TensorType wt, const float* x, int64_t k, int64_t ldx, int64_t row_begin,
                           int64_t row_end, void* prepared);
inline void PrepareActivations(TensorType wt, const float* x, int64_t m, int64_t k, int64_t ldx,
                               void* prepared) {
  PrepareActivationRows(wt, x, k, ldx, 0, m, prepared);
}
// Y[i][j] for i in [0, m), j in [n_begin, n_end). REQUIRES: ValidateMatMul(wt, k).ok(),
// `prepared` holds all m rows prepared for (wt, k).
void MatMulPrepared(TensorType wt, const void* w, size_t w_stride, int64_t n_begin, int64_t n_end,
                    const void* prepared, int64_t m, int64_t k, float* y, int64_t ldy);

// Prepacked weights: Q8_0, Q4_0 and Q4_1 matrices rearranged once (at model load) into groups of
// 8 rows whose quants interleave 4 bytes at a time, so one vector holds 4 elements of 8 rows
// and the kernels need no horizontal sums or per-call repacking. Same bytes in total as the
// file's layout; results equal MatMulPrepared's bit for bit (batch invariance is kept).
// True when wt has a prepacked kernel in the active kernel set (AVX2 only). Callers keep the
// original weights too and use them whenever this is false at the time of the call.
bool CanPrepackWeights(TensorType wt);
size_t PrepackedWeightBytes(TensorType wt, int64_t n, int64_t k);
// Packs weight rows into groups [group_begin, group_end) of ceil(n / 8); thread-safe for
// disjoint ranges. REQUIRES: ValidateMatMul(wt, k).ok(), `packed` holds PrepackedWeightBytes.
void PrepackWeights(TensorType wt, const void* w, size_t w_stride, int64_t n, int64_t k, int64_t group_begin,
                    int64_t group_end, void* packed);
// As MatMulPrepared, over prepacked weights. REQUIRES: CanPrepackWeights(wt), n_begin a multiple
// of 8 and n_end <= n.
void MatMulPrepackedWeights(TensorType wt, const void* packed, int64_t n, int64_t n_begin, int64_t n_end,
                            const void* prepared, int64_t m, int64_t k, float* y, int64_t ldy);

// Single-threaded convenience (tests, tools): both phases with an internal scratch buffer.
Status MatMul(TensorType wt, const void* w, size_t w_stride, int64_t n, const float* x, int64_t m,
              int64_t k, int64_t ldx, float* y, int64_t ldy);

}  // namespace lms
