// Greedy choice on the device: per row, the first column holding the row's largest value (the
// CPU sampler's rule: strictly greater wins, so NaNs never do, and a row with nothing above -inf
// gives 0). One block per row; each thread scans a stride, then a tree in shared memory keeps
// the larger value, or on a tie the smaller column.
#include <climits>

#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

constexpr int kThreads = 256;

__global__ void ArgMaxKernel(const float* x, int64_t ld, int64_t n, int32_t* ids) {
  PdlStart();
  __shared__ float best_v[kThreads];
  __shared__ int32_t best_i[kThreads];
  const float* row = x + blockIdx.x * ld;
  const int t = threadIdx.x;
  float v = -INFINITY;
  int32_t at = INT_MAX;  // none yet
  for (int64_t i = t; i < n; i += kThreads) {
    if (row[i] > v) {
      v = row[i];
      at = static_cast<int32_t>(i);
    }
  }
  best_v[t] = v;
  best_i[t] = at;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s) {
      const float ov = best_v[t + s];
      const int32_t oi = best_i[t + s];
      if (ov > best_v[t] || (ov == best_v[t] && oi < best_i[t])) {
        best_v[t] = ov;
        best_i[t] = oi;
      }
    }
    __syncthreads();
  }
  if (t == 0) ids[blockIdx.x] = best_i[0] == INT_MAX ? 0 : best_i[0];
}

}  // namespace

cudaError_t LaunchArgMaxRows(const float* x, int64_t ld, int64_t rows, int64_t n, int32_t* ids, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  return LaunchKernel("ArgMaxKernel", ArgMaxKernel, static_cast<unsigned>(rows), kThreads, 0, s, x, ld, n, ids);
}

}  // namespace lms::gpu
