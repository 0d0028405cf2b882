// The element-wise parts of materialised attention: pointer arrays for the batched products,
// the scaled causal softmax of the scores, and its backward. One block per (b, h, query) row.
#include "gpu/train/train_kernels_impl.h"
#include "gpu/train/train_reduce.cuh"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ const float* PointerOf(const PtrSpec& p, int64_t b, int64_t h) {
  return p.base + b * p.batch_stride + (h / p.head_div) * p.head_stride;
}

__global__ void FillPointersKernel(const float** out, PtrSpec a, PtrSpec b, PtrSpec c, int64_t count, int64_t heads) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  const int64_t bi = i / heads, h = i % heads;
  out[i] = PointerOf(a, bi, h);
  out[count + i] = PointerOf(b, bi, h);
  out[2 * count + i] = PointerOf(c, bi, h);
}

// Row r holds query i = r % T: scores j ≤ i are scaled and softmaxed, j > i set to 0.
__global__ void CausalSoftmaxKernel(float* att, int64_t T, float scale) {
  const int64_t r = blockIdx.x;
  float* a = att + r * T;
  const int64_t n = r % T + 1;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float v = a[j] * scale;
    a[j] = v;
    mx = fmaxf(mx, v);
  }
  mx = BlockReduceMax(mx);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(a[j] - mx);
    a[j] = e;
    sum += e;
  }
  sum = BlockReduceSum(sum);
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) a[j] *= inv;
  for (int64_t j = n + threadIdx.x; j < T; j += blockDim.x) a[j] = 0.0f;
}

// dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale on j ≤ i, 0 above; ds holds dP on entry.
__global__ void CausalSoftmaxBackwardKernel(float* ds, const float* att, int64_t T, float scale) {
  const int64_t r = blockIdx.x;
  float* d = ds + r * T;
  const float* p = att + r * T;
  const int64_t n = r % T + 1;
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += p[j] * d[j];
  dot = BlockReduceSum(dot);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) d[j] = p[j] * (d[j] - dot) * scale;
  for (int64_t j = n + threadIdx.x; j < T; j += blockDim.x) d[j] = 0.0f;
}

}  // namespace

cudaError_t LaunchFillPointers(const float** out, PtrSpec a, PtrSpec b, PtrSpec c, int64_t count, int64_t heads,
                               cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>((count + kThreads - 1) / kThreads);
  FillPointersKernel<<<grid, kThreads, 0, s>>>(out, a, b, c, count, heads);
  return cudaGetLastError();
}

cudaError_t LaunchCausalSoftmax(float* att, int64_t rows, int64_t T, float scale, cudaStream_t s) {
  CausalSoftmaxKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(att, T, scale);
  return cudaGetLastError();
}

cudaError_t LaunchCausalSoftmaxBackward(float* ds, const float* p, int64_t rows, int64_t T, float scale,
                                        cudaStream_t s) {
  CausalSoftmaxBackwardKernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(ds, p, T, scale);
  return cudaGetLastError();
}

}  // namespace lms::gpu::train
