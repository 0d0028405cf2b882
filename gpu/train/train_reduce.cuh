// Block reductions of the training kernels, in float or double. The shuffle tree is fixed, so a
// block's result depends only on its inputs and blockDim (a multiple of 32, at most 1024).
#pragma once

#include <cmath>

namespace lms::gpu::train {

template <typename T>
__device__ __forceinline__ T WarpReduceSum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float WarpReduceMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Every thread gets the block's sum.
template <typename T>
__device__ __forceinline__ T BlockReduceSum(T v) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = WarpReduceSum(v);
  __syncthreads();  // a previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : T(0);
  return WarpReduceSum(v);
}

__device__ __forceinline__ float BlockReduceMax(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = WarpReduceMax(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : -INFINITY;
  return WarpReduceMax(v);
}

}  // namespace lms::gpu::train
