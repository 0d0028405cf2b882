// Writes the batch's K or V rows into the paged cache at their slots (f32 -> f16 rounds to
// nearest even, as the CPU's conversion does).
#include <cuda_fp16.h>

#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

// blockIdx.z picks the source and cache: 0 the first pair, 1 the second (src2, cache2).
__global__ void StoreKvKernel(const float* src, int64_t ld_src, void* cache, const float* src2, int64_t ld_src2,
                              void* cache2, bool f16, int64_t ld_cache, int64_t n, const int32_t* slots) {
  PdlStart();
  if (blockIdx.z == 1) {
    src = src2;
    ld_src = ld_src2;
    cache = cache2;
  }
  const int t = blockIdx.y;
  const int64_t slot = slots[t];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const float v = src[t * ld_src + i];
    if (f16) {
      static_cast<__half*>(cache)[slot * ld_cache + i] = __float2half_rn(v);
    } else {
      static_cast<float*>(cache)[slot * ld_cache + i] = v;
    }
  }
}

}  // namespace

cudaError_t LaunchStoreKv(const float* src, int64_t ld_src, void* cache, bool f16, int64_t ld_cache, int64_t n,
                          const DeviceBatch& b, cudaStream_t s) {
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>((n + threads - 1) / threads), static_cast<unsigned>(b.n_tokens));
  return LaunchKernel("StoreKvKernel", StoreKvKernel, grid, threads, 0, s, src, ld_src, cache, nullptr, 0, nullptr,
                      f16, ld_cache, n, b.slots);
}

cudaError_t LaunchStoreKv2(const float* k, int64_t ld_k, const float* v, int64_t ld_v, void* k_cache, void* v_cache,
                           bool f16, int64_t ld_cache, int64_t n, const DeviceBatch& b, cudaStream_t s) {
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>((n + threads - 1) / threads), static_cast<unsigned>(b.n_tokens), 2);
  return LaunchKernel("StoreKvKernel", StoreKvKernel, grid, threads, 0, s, k, ld_k, k_cache, v, ld_v, v_cache, f16,
                      ld_cache, n, b.slots);
}

}  // namespace lms::gpu
