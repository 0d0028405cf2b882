// Reading and writing elements kept in fp32 or bf16 with the arithmetic in fp32, so one kernel
// template serves both the fp32 buffers and those a kBF16 stage keeps in bf16 alone.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace lms::gpu::train {

__device__ __forceinline__ float Ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float Ld(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }

// bf16: rounded to nearest even.
__device__ __forceinline__ void St(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void St(__nv_bfloat16* p, int64_t i, float x) { p[i] = __float2bfloat16_rn(x); }

}  // namespace lms::gpu::train
