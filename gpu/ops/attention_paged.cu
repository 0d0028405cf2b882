// Paged causal attention. One thread block per (KV head, token): its `group` query heads share
// the KV head, so each cached K/V row is read once for all of them. The block's warps take the
// positions [0, pos] in turn (warp w: w, w + kWarps, ...), each keeping an online softmax (running
// max, sum and weighted V) per query head; lane l holds dims [l*DPL, l*DPL + DPL) of a head.
// The warps' partial results are merged through shared memory at the end. K/V rows are found
// through the sequence's block table: row = table[p / block_size] * block_size + p % block_size.
// With a.splits > 1 (few tokens: a decode step) the positions are shared by `splits` blocks per
// (KV head, token) as well (block s's warp w takes s * kWarps + w, then every splits * kWarps-th);
// each writes its merged partial softmax, and AttentionCombineKernel merges them in split order.
#include <cuda_fp16.h>

#include <cfloat>

#include "gpu/ops/launch.cuh"
#include "gpu/ops/ops.h"
#include "gpu/ops/reduce.cuh"

namespace lms::gpu {
namespace {

constexpr int kWarps = 4;

template <int DPL>
__device__ __forceinline__ void LoadKvDims(const void* cache, bool f16, int64_t offset, float out[DPL]) {
  if (f16) {
    const __half* p = static_cast<const __half*>(cache) + offset;
#pragma unroll
    for (int i = 0; i < DPL; ++i) out[i] = __half2float(p[i]);
  } else {
    const float* p = static_cast<const float*>(cache) + offset;
#pragma unroll
    for (int i = 0; i < DPL; ++i) out[i] = p[i];
  }
}

template <int DPL>
__global__ void AttentionPagedKernel(const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                                     AttentionArgs a, DeviceBatch b, float* out, int64_t ld_out) {
  extern __shared__ float shared[];  // [kWarps][group] max, [kWarps][group] sum, [kWarps][group][head_dim] acc
  PdlStart();
  const int kvh = blockIdx.x, t = blockIdx.y;
  if (b.tiled != nullptr && b.tiled[t] != 0) return;  // the tiled prefill kernel's token (whole block)
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int group = a.n_heads / a.n_kv_heads;
  const int pos = b.positions[t];
  const int32_t* table = b.block_tables + static_cast<int64_t>(b.seq_of_token[t]) * b.bt_stride;
  const int hd = a.head_dim;

  float qv[kMaxAttentionGroup][DPL], acc[kMaxAttentionGroup][DPL], mx[kMaxAttentionGroup], sum[kMaxAttentionGroup];
#pragma unroll
  for (int g = 0; g < kMaxAttentionGroup; ++g) {
    mx[g] = -FLT_MAX;
    sum[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      acc[g][i] = 0.0f;
      qv[g][i] = g < group ? q[t * ld_q + static_cast<int64_t>(kvh * group + g) * hd + lane * DPL + i] : 0.0f;
    }
  }
  const int64_t dim0 = static_cast<int64_t>(kvh) * hd + lane * DPL;
  const int split = blockIdx.z, workers = kWarps * a.splits;
  for (int p = split * kWarps + warp; p <= pos; p += workers) {
    const int64_t row = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
    float kd[DPL], vd[DPL];
    LoadKvDims<DPL>(k_cache, a.f16, row * a.ld_cache + dim0, kd);
    LoadKvDims<DPL>(v_cache, a.f16, row * a.ld_cache + dim0, vd);
#pragma unroll
    for (int g = 0; g < kMaxAttentionGroup; ++g) {
      if (g >= group) break;
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < DPL; ++i) dot += qv[g][i] * kd[i];
      const float score = WarpSum(dot) * a.scale;
      const float m_new = fmaxf(mx[g], score);
      const float corr = expf(mx[g] - m_new), w = expf(score - m_new);
      sum[g] = sum[g] * corr + w;
#pragma unroll
      for (int i = 0; i < DPL; ++i) acc[g][i] = acc[g][i] * corr + w * vd[i];
      mx[g] = m_new;
    }
  }
  float* s_max = shared;
  float* s_sum = s_max + kWarps * group;
  float* s_acc = s_sum + kWarps * group;
#pragma unroll
  for (int g = 0; g < kMaxAttentionGroup; ++g) {  // constant indices keep acc in registers
    if (g >= group) break;
    if (lane == 0) {
      s_max[warp * group + g] = mx[g];
      s_sum[warp * group + g] = sum[g];
    }
#pragma unroll
    for (int i = 0; i < DPL; ++i) s_acc[(warp * group + g) * hd + lane * DPL + i] = acc[g][i];
  }
  __syncthreads();
  // Merge: thread j computes output element j of the group's heads.
  float* part = a.splits > 1 ? a.partials + ((static_cast<int64_t>(t) * a.n_kv_heads + kvh) * a.splits + split) *
                                               AttentionPartialFloats(group, hd)
                             : nullptr;
  for (int j = threadIdx.x; j < group * hd; j += blockDim.x) {
    const int g = j / hd, d = j % hd;
    float m = -FLT_MAX;
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, s_max[w * group + g]);
    float total = 0.0f, o = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (s_sum[w * group + g] == 0.0f) continue;  // a warp that saw no position
      const float f = expf(s_max[w * group + g] - m);
      total += s_sum[w * group + g] * f;
      o += s_acc[(w * group + g) * hd + d] * f;
    }
    if (part == nullptr) {
      out[t * ld_out + static_cast<int64_t>(kvh * group + g) * hd + d] = o / total;
    } else {  // this split's share, unnormalized, with its maximum and sum (0: it saw no position)
      part[j] = o;
      if (d == 0) {
        part[group * hd + g] = m;
        part[group * hd + group + g] = total;
      }
    }
  }
}

// Block (KV head, token): each output element merges the splits' partials in split order.
__global__ void AttentionCombineKernel(AttentionArgs a, DeviceBatch b, float* out, int64_t ld_out) {
  PdlStart();
  const int kvh = blockIdx.x, t = blockIdx.y;
  if (b.tiled != nullptr && b.tiled[t] != 0) return;
  const int group = a.n_heads / a.n_kv_heads, hd = a.head_dim;
  const int64_t stride = AttentionPartialFloats(group, hd);
  const float* base = a.partials + (static_cast<int64_t>(t) * a.n_kv_heads + kvh) * a.splits * stride;
  for (int j = threadIdx.x; j < group * hd; j += blockDim.x) {
    const int g = j / hd;
    float m = -FLT_MAX;
    for (int s = 0; s < a.splits; ++s) {
      if (base[s * stride + group * hd + group + g] != 0.0f) m = fmaxf(m, base[s * stride + group * hd + g]);
    }
    float total = 0.0f, o = 0.0f;
    for (int s = 0; s < a.splits; ++s) {
      const float ts = base[s * stride + group * hd + group + g];
      if (ts == 0.0f) continue;  // a split that saw no position
      const float f = expf(base[s * stride + group * hd + g] - m);
      total += ts * f;
      o += base[s * stride + j] * f;
    }
    out[t * ld_out + static_cast<int64_t>(kvh * group) * hd + j] = o / total;
  }
}

}  // namespace

bool AttentionSupports(int32_t head_dim, int32_t group) {
  const bool dims = head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
  return dims && group >= 1 && group <= kMaxAttentionGroup;
}

cudaError_t LaunchAttentionPaged(const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                                 const AttentionArgs& a, const DeviceBatch& b, float* out, int64_t ld_out,
                                 cudaStream_t s) {
  const int group = a.n_heads / a.n_kv_heads;
  if (a.splits < 1 || a.splits > kMaxAttentionSplits || (a.splits > 1 && a.partials == nullptr)) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(static_cast<unsigned>(a.n_kv_heads), static_cast<unsigned>(b.n_tokens),
                  static_cast<unsigned>(a.splits));
  const size_t shared = sizeof(float) * kWarps * group * (2 + a.head_dim);
  auto launch = [&](const char* name, auto kernel) {
    return LaunchKernel(name, kernel, grid, kWarps * 32, shared, s, q, ld_q, k_cache, v_cache, a, b, out, ld_out);
  };
  cudaError_t e = cudaErrorInvalidValue;
  switch (a.head_dim) {
    case 32: e = launch("AttentionPagedKernel<1>", AttentionPagedKernel<1>); break;
    case 64: e = launch("AttentionPagedKernel<2>", AttentionPagedKernel<2>); break;
    case 128: e = launch("AttentionPagedKernel<4>", AttentionPagedKernel<4>); break;
    case 256: e = launch("AttentionPagedKernel<8>", AttentionPagedKernel<8>); break;
    default: break;
  }
  if (e != cudaSuccess || a.splits == 1) return e;
  return LaunchKernel("AttentionCombineKernel", AttentionCombineKernel, dim3(grid.x, grid.y), 128, 0, s, a, b, out,
                      ld_out);
}

}  // namespace lms::gpu
