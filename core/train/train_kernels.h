// Dense fp32 kernels behind the training ops, with an AVX2+FMA build chosen at run time.
//
// Every output element is computed by one call in a fixed order (a chain of fused multiply-adds
// over the reduction index), whatever the row range a thread is given. So results do not depend
// on how rows are split between threads or into micro-batches, which is what lets a pipelined
// step reproduce a single-stage step exactly.
#pragma once

#include <cstdint>

namespace lms::train::kern {

// out[r][n] = sum_k a[r][k] * w[n][k] for r in [r0, r1), n in [0, N).
//   a (R, K) row stride lda; w (N, K) contiguous; out (R, N) row stride ldo.
using DotRowsFn = void (*)(float* out, int64_t ldo, const float* a, int64_t lda, const float* w,
                           int64_t r0, int64_t r1, int64_t N, int64_t K);

// c[r][k] += sum_j a(r, j) * b[j][k] for r in [r0, r1), k in [0, K), j in [0, J), where
//   a(r, j) = a[r * a_rs + j * a_js] (strided: lets one kernel serve dx = dy·W and dW = dyᵀ·x),
//   b (J, K) row stride ldb; c (R, K) row stride ldc.
using AccumOuterFn = void (*)(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_js,
                              const float* b, int64_t ldb, int64_t r0, int64_t r1, int64_t K,
                              int64_t J);

struct Kernels {
  DotRowsFn dot_rows;
  AccumOuterFn accum_outer;
  const char* name;
};

// The fastest kernels this CPU runs (checked once).
const Kernels& Best();
// Portable builds, for tests.
const Kernels& Generic();

namespace generic {
void DotRows(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t, int64_t, int64_t);
void AccumOuter(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t,
                int64_t, int64_t, int64_t);
}  // namespace generic
namespace avx2 {
void DotRows(float*, int64_t, const float*, int64_t, const float*, int64_t, int64_t, int64_t, int64_t);
void AccumOuter(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t,
                int64_t, int64_t, int64_t);
}  // namespace avx2

}  // namespace lms::train::kern
