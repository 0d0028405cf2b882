// Gathers the rows whose logits the sampler wants.
#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

__global__ void GatherRowsKernel(const float* x, int64_t ld_x, float* out, int64_t ld_out, int64_t n,
                                 const int32_t* rows) {
  PdlStart();
  const int i = blockIdx.y;
  const float* src = x + static_cast<int64_t>(rows[i]) * ld_x;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < n; c += gridDim.x * blockDim.x) {
    out[i * ld_out + c] = src[c];
  }
}

}  // namespace

cudaError_t LaunchGatherRows(const float* x, int64_t ld_x, float* out, int64_t ld_out, int64_t n,
                             const DeviceBatch& b, cudaStream_t s) {
  if (b.n_logit_rows == 0) return cudaSuccess;
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>((n + threads - 1) / threads), static_cast<unsigned>(b.n_logit_rows));
  return LaunchKernel("GatherRowsKernel", GatherRowsKernel, grid, threads, 0, s, x, ld_x, out, ld_out, n, b.logit_rows);
}

}  // namespace lms::gpu
