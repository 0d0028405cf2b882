// Tiled causal attention for prefill, in the manner of FlashAttention-2: one thread block per
// (tile of up to 64 consecutive query rows of one sequence, query head), 4 warps of 16 rows.
// Keys and values come from the paged cache through the sequence's block table, 64 positions at
// a time, into shared memory as f16; the products run on tensor cores (mma.sync m16n8k16, f16
// operands, fp32 accumulation) with an online softmax in fp32 registers, gpu/ops/mma_tile.cuh's
// pieces as in gpu/train/attention_flash.cu.
//
// Queries are multiplied by scale·log2(e) before they are rounded to f16, so the scores come out
// in the base-2 domain and exp2 serves. A tile covers rows [t0, t0 + rows) at positions
// [p0, p0 + rows) and attends to positions [0, p0 + rows), which the batch's KV stores have
// written before this op runs (StoreKv precedes Attention in a layer).
#include <cuda_fp16.h>

#include <cstdint>

#include "gpu/ops/mma_tile.cuh"
#include "gpu/ops/ops.h"
#include "gpu/ops/prefill_tiles.h"

namespace lms::gpu {
namespace {

constexpr int kTile = kPrefillTile;  // rows and key positions per step
constexpr int kThreads = 128;        // 4 warps of 16 rows
constexpr int kPad = 8;
constexpr float kLog2e = 1.4426950408889634f;

// Four f16 values of a cache row (f16 or f32 cache), as two packed pairs.
__device__ __forceinline__ uint2 LoadCache4(const void* cache, bool f16, int64_t offset) {
  if (f16) return *reinterpret_cast<const uint2*>(static_cast<const __half*>(cache) + offset);
  const float4 x = *reinterpret_cast<const float4*>(static_cast<const float*>(cache) + offset);
  return make_uint2(mma::Pack<true>(x.x, x.y), mma::Pack<true>(x.z, x.w));
}

template <int HD>
__global__ void __launch_bounds__(kThreads) AttentionPrefillKernel(const float* q, int64_t ld_q, const void* k_cache,
                                                                   const void* v_cache, AttentionArgs a, DeviceBatch b,
                                                                   float* out, int64_t ld_out) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int LD = HD + kPad, LDT = kTile + kPad, kVec = HD / 4;
  uint16_t* Qs = smem;             // [kTile][LD]
  uint16_t* Ks = Qs + kTile * LD;  // [kTile][LD]
  uint16_t* Vt = Ks + kTile * LD;  // [HD][LDT]: V transposed
  const int32_t* tile = b.tiles + 4 * static_cast<int64_t>(blockIdx.x);
  const int t0 = tile[0], rows = tile[1], seq = tile[2], p0 = tile[3];
  const int h = blockIdx.y, kvh = h / (a.n_heads / a.n_kv_heads);
  const int32_t* table = b.block_tables + static_cast<int64_t>(seq) * b.bt_stride;
  const int n_keys = p0 + rows;
  const float qscale = a.scale * kLog2e;

  for (int i = threadIdx.x; i < kTile * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 4;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < rows) x = *reinterpret_cast<const float4*>(q + static_cast<int64_t>(t0 + r) * ld_q + int64_t{h} * HD + c);
    uint32_t* d = reinterpret_cast<uint32_t*>(Qs + r * LD + c);
    d[0] = mma::Pack<true>(x.x * qscale, x.y * qscale);
    d[1] = mma::Pack<true>(x.z * qscale, x.w * qscale);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r0 = warp * 16 + g, r1 = r0 + 8;       // this thread's rows in the tile
  const int qpos0 = p0 + r0, qpos1 = p0 + r1;      // and their positions
  float o[HD / 8][4] = {};
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  const int n_kt = (n_keys + kTile - 1) / kTile;
  for (int kt = 0; kt < n_kt; ++kt) {
    __syncthreads();  // every warp is done with the previous K and V
    for (int i = threadIdx.x; i < kTile * kVec; i += blockDim.x) {
      const int r = i / kVec, c = (i % kVec) * 4, p = kt * kTile + r;
      uint2 kh = make_uint2(0, 0), vh = make_uint2(0, 0);
      if (p < n_keys) {
        const int64_t row = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
        const int64_t off = row * a.ld_cache + int64_t{kvh} * HD + c;
        kh = LoadCache4(k_cache, a.f16, off);
        vh = LoadCache4(v_cache, a.f16, off);
      }
      *reinterpret_cast<uint2*>(Ks + r * LD + c) = kh;
      Vt[(c + 0) * LDT + r] = static_cast<uint16_t>(vh.x & 0xffffu);
      Vt[(c + 1) * LDT + r] = static_cast<uint16_t>(vh.x >> 16);
      Vt[(c + 2) * LDT + r] = static_cast<uint16_t>(vh.y & 0xffffu);
      Vt[(c + 3) * LDT + r] = static_cast<uint16_t>(vh.y >> 16);
    }
    __syncthreads();
    float s[kTile / 8][4] = {};
    mma::ProductABt<true, HD, kTile / 8>(s, Qs, Ks, LD, warp * 16, g, t);
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int key = kt * kTile + nt * 8 + 2 * t + (i & 1), qpos = i < 2 ? qpos0 : qpos1;
        if (key > qpos || key >= n_keys) s[nt][i] = -INFINITY;
      }
    }
    // Position 0 is in the first key tile and precedes every row, so the maxima are finite from
    // then on; a later tile may be wholly masked for a row (its factor is then 1, its terms 0).
    mma::OnlineSoftmaxStep<kTile / 8, HD>(s, o, m0, m1, l0, l1);
    mma::ProductPB<true, kTile / 8, HD>(o, s, Vt, LDT, g, t);
  }
  const float inv0 = 1.0f / mma::QuadSum(l0), inv1 = 1.0f / mma::QuadSum(l1);
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int64_t col = int64_t{h} * HD + nt * 8 + 2 * t;
    if (r0 < rows) {
      *reinterpret_cast<float2*>(out + static_cast<int64_t>(t0 + r0) * ld_out + col) =
          make_float2(o[nt][0] * inv0, o[nt][1] * inv0);
    }
    if (r1 < rows) {
      *reinterpret_cast<float2*>(out + static_cast<int64_t>(t0 + r1) * ld_out + col) =
          make_float2(o[nt][2] * inv1, o[nt][3] * inv1);
    }
  }
}

template <int HD>
cudaError_t LaunchFor(const float* q, int64_t ld_q, const void* k_cache, const void* v_cache, const AttentionArgs& a,
                      const DeviceBatch& b, float* out, int64_t ld_out, cudaStream_t s) {
  const size_t smem = sizeof(uint16_t) * (2 * kTile * (HD + kPad) + HD * (kTile + kPad));
  const cudaError_t e = cudaFuncSetAttribute(AttentionPrefillKernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(b.n_tiles), static_cast<unsigned>(a.n_heads));
  AttentionPrefillKernel<HD><<<grid, kThreads, smem, s>>>(q, ld_q, k_cache, v_cache, a, b, out, ld_out);
  return cudaGetLastError();
}

}  // namespace

bool PrefillAttentionSupports(int32_t head_dim, const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                              const AttentionArgs& a, const float* out, int64_t ld_out) {
  const bool dims = head_dim == 32 || head_dim == 64 || head_dim == 128;
  auto aligned = [](const void* p, uintptr_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  const uintptr_t cache_align = a.f16 ? 8 : 16;  // four elements at a time
  return dims && aligned(q, 16) && ld_q % 4 == 0 && aligned(k_cache, cache_align) && aligned(v_cache, cache_align) &&
         a.ld_cache % 4 == 0 && aligned(out, 8) && ld_out % 2 == 0;
}

cudaError_t LaunchAttentionPrefill(const float* q, int64_t ld_q, const void* k_cache, const void* v_cache,
                                   const AttentionArgs& a, const DeviceBatch& b, float* out, int64_t ld_out,
                                   cudaStream_t s) {
  if (b.n_tiles <= 0) return cudaSuccess;
  switch (a.head_dim) {
    case 32: return LaunchFor<32>(q, ld_q, k_cache, v_cache, a, b, out, ld_out, s);
    case 64: return LaunchFor<64>(q, ld_q, k_cache, v_cache, a, b, out, ld_out, s);
    case 128: return LaunchFor<128>(q, ld_q, k_cache, v_cache, a, b, out, ld_out, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace lms::gpu
