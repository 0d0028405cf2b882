// Element-wise additions: the residual x += y, and a bias broadcast over rows.
#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

__global__ void AddKernel(float* x, int64_t ld_x, const float* y, int64_t ld_y, int64_t n) {
  PdlStart();
  const int64_t r = blockIdx.y;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    x[r * ld_x + i] += y[r * ld_y + i];
  }
}

__global__ void AddBiasKernel(float* out, int64_t ld, const float* bias, int64_t n) {
  PdlStart();
  const int64_t r = blockIdx.y;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    out[r * ld + i] += bias[i];
  }
}

dim3 Grid(int64_t rows, int64_t n, int threads) {
  return dim3(static_cast<unsigned>((n + threads - 1) / threads), static_cast<unsigned>(rows));
}

}  // namespace

cudaError_t LaunchAdd(float* x, int64_t ld_x, const float* y, int64_t ld_y, int64_t rows, int64_t n, cudaStream_t s) {
  return LaunchKernel("AddKernel", AddKernel, Grid(rows, n, 256), 256, 0, s, x, ld_x, y, ld_y, n);
}

cudaError_t LaunchAddBias(float* out, int64_t ld, const float* bias, int64_t rows, int64_t n, cudaStream_t s) {
  return LaunchKernel("AddBiasKernel", AddBiasKernel, Grid(rows, n, 256), 256, 0, s, out, ld, bias, n);
}

}  // namespace lms::gpu
