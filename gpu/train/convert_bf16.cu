// fp32 → bf16 (round to nearest even), for the mixed-precision products.
#include <cuda_bf16.h>

#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

__global__ void ToBf16Kernel(__nv_bfloat16* dst, const float* src, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    dst[i] = __float2bfloat16_rn(src[i]);
  }
}

}  // namespace

cudaError_t LaunchToBf16(void* dst, const float* src, int64_t n, cudaStream_t s) {
  const int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  ToBf16Kernel<<<grid, threads, 0, s>>>(static_cast<__nv_bfloat16*>(dst), src, n);
  return cudaGetLastError();
}

}  // namespace lms::gpu::train
