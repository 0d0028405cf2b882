// SwiGLU: out = silu(gate) * up, element-wise.
#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

__global__ void SwiGluKernel(const float* gate, int64_t ld_g, const float* up, int64_t ld_u, float* out, int64_t ld_o,
                             int64_t n) {
  PdlStart();
  const int64_t r = blockIdx.y;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float g = gate[r * ld_g + i];
    out[r * ld_o + i] = g / (1.0f + expf(-g)) * up[r * ld_u + i];
  }
}

}  // namespace

cudaError_t LaunchSwiGlu(const float* gate, int64_t ld_g, const float* up, int64_t ld_u, float* out, int64_t ld_o,
                         int64_t rows, int64_t n, cudaStream_t s) {
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>((n + threads - 1) / threads), static_cast<unsigned>(rows));
  return LaunchKernel("SwiGluKernel", SwiGluKernel, grid, threads, 0, s, gate, ld_g, up, ld_u, out, ld_o, n);
}

}  // namespace lms::gpu
