// RMSNorm: one thread block per row.
#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"
#include "gpu/ops/reduce.cuh"

namespace lms::gpu {
namespace {

__global__ void RmsNormKernel(const float* x, int64_t ld_x, const float* w, float eps, float* out, int64_t ld_out,
                              int n) {
  PdlStart();
  const float* xr = x + blockIdx.x * ld_x;
  float* o = out + blockIdx.x * ld_out;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = BlockSum(ss);
  const float scale = 1.0f / sqrtf(ss / n + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = xr[i] * scale * w[i];
}

}  // namespace

cudaError_t LaunchRmsNorm(const float* x, int64_t ld_x, const float* w, float eps, float* out, int64_t ld_out,
                          int64_t rows, int n, cudaStream_t s) {
  return LaunchKernel("RmsNormKernel", RmsNormKernel, static_cast<unsigned>(rows), 256, 0, s, x, ld_x, w, eps, out,
                      ld_out, n);
}

}  // namespace lms::gpu
