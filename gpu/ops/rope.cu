// RoPE: one thread per (token, head, rotated pair); and RoPE fused with the KV-cache store, one
// block per token. theta follows the CPU's float recurrence theta_i = pos * theta_scale^i
// (repeated multiplication, not pow), so angles match it exactly.
#include <cuda_fp16.h>

#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"

namespace lms::gpu {
namespace {

// Rotates pair i of head h of one token's row v (theta by the CPU's float recurrence).
__device__ __forceinline__ void RotatePair(float* v, int h, int i, float pos, const RopeArgs& a) {
  const int half = a.n_dims / 2;
  float theta = pos;
  for (int j = 0; j < i; ++j) theta *= a.theta_scale;
  const float th = theta * a.freq_scale;
  const float c = cosf(th), sn = sinf(th);
  float* hv = v + static_cast<int64_t>(h) * a.head_dim;
  const int ia = a.neox ? i : 2 * i, ib = a.neox ? i + half : 2 * i + 1;
  const float x0 = hv[ia], x1 = hv[ib];
  hv[ia] = x0 * c - x1 * sn;
  hv[ib] = x0 * sn + x1 * c;
}

__global__ void RopeKernel(float* x, int64_t ld, int32_t n_heads, RopeArgs a, const int32_t* positions,
                           int32_t n_tokens) {
  PdlStart();
  const int half = a.n_dims / 2;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t total = static_cast<int64_t>(n_tokens) * n_heads * half;
  if (idx >= total) return;
  const int i = static_cast<int>(idx % half);
  const int h = static_cast<int>((idx / half) % n_heads);
  const int t = static_cast<int>(idx / (static_cast<int64_t>(half) * n_heads));
  RotatePair(x + t * ld, h, i, static_cast<float>(positions[t]), a);
}

__device__ __forceinline__ void StoreElement(void* cache, bool f16, int64_t at, float v) {
  if (f16) {
    static_cast<__half*>(cache)[at] = __float2half_rn(v);
  } else {
    static_cast<float*>(cache)[at] = v;
  }
}

// Block t: token t's pairs of q and k rotated, then (after the block's barrier) its k and v rows
// stored at its slot.
__global__ void RopeStoreKvKernel(float* q, int64_t ld_q, int32_t n_q_heads, float* k, int64_t ld_k, const float* v,
                                  int64_t ld_v, int32_t n_kv_heads, RopeArgs a, KvStoreArgs c,
                                  const int32_t* positions, const int32_t* slots) {
  PdlStart();
  const int t = blockIdx.x;
  const int half = a.n_dims / 2;
  const float pos = static_cast<float>(positions[t]);
  const int q_pairs = n_q_heads * half, pairs = (n_q_heads + n_kv_heads) * half;
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    if (p < q_pairs) {
      RotatePair(q + t * ld_q, p / half, p % half, pos, a);
    } else {
      RotatePair(k + t * ld_k, (p - q_pairs) / half, (p - q_pairs) % half, pos, a);
    }
  }
  __syncthreads();
  const int64_t n = static_cast<int64_t>(n_kv_heads) * a.head_dim;
  const int64_t slot = slots[t];
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    StoreElement(c.k_cache, c.f16, slot * c.ld_cache + i, k[t * ld_k + i]);
    StoreElement(c.v_cache, c.f16, slot * c.ld_cache + i, v[t * ld_v + i]);
  }
}

}  // namespace

cudaError_t LaunchRope(float* x, int64_t ld, int32_t n_heads, const RopeArgs& a, const DeviceBatch& b, cudaStream_t s) {
  const int64_t total = static_cast<int64_t>(b.n_tokens) * n_heads * (a.n_dims / 2);
  if (total == 0) return cudaSuccess;
  const int threads = 256;
  return LaunchKernel("RopeKernel", RopeKernel, static_cast<unsigned>((total + threads - 1) / threads), threads, 0, s,
                      x, ld, n_heads, a, b.positions, b.n_tokens);
}

cudaError_t LaunchRopeStoreKv(float* q, int64_t ld_q, int32_t n_q_heads, float* k, int64_t ld_k, const float* v,
                              int64_t ld_v, int32_t n_kv_heads, const RopeArgs& a, const KvStoreArgs& c,
                              const DeviceBatch& b, cudaStream_t s) {
  if (b.n_tokens == 0) return cudaSuccess;
  return LaunchKernel("RopeStoreKvKernel", RopeStoreKvKernel, static_cast<unsigned>(b.n_tokens), 256, 0, s, q, ld_q,
                      n_q_heads, k, ld_k, v, ld_v, n_kv_heads, a, c, b.positions, b.slots);
}

}  // namespace lms::gpu
