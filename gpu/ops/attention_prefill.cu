// Tiled causal attention for prefill, in the manner of FlashAttention-2: one thread block per
// (tile of up to 64 consecutive query rows of one sequence, query head), 4 warps of 16 rows.
// Keys and values come from the paged cache through the sequence's block table, 64 positions at
// a time, into shared memory as f16; the products run on tensor cores (mma.sync m16n8k16, f16
// operands, fp32 accumulation) with an online softmax in fp32 registers. The fragment layouts
// are those of gpu/train/attention_flash.cu (see its header): the C fragments of S, packed to
// f16, are the A operand of P·V.
//
// Queries are multiplied by scale·log2(e) before they are rounded to f16, so the scores come out
// in the base-2 domain and exp2 serves. A tile covers rows [t0, t0 + rows) at positions
// [p0, p0 + rows) and attends to positions [0, p0 + rows), which the batch's KV stores have
// written before this op runs (StoreKv precedes Attention in a layer).
#include <cuda_fp16.h>

#include <cstdint>

#include "gpu/ops/ops.h"
#include "gpu/ops/prefill_tiles.h"

namespace lms::gpu {
namespace {

constexpr int kTile = kPrefillTile;  // rows and key positions per step
constexpr int kThreads = 128;        // 4 warps of 16 rows
constexpr int kPad = 8;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ uint32_t PackHalf(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);  // .x (lo) in the low 16 bits
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t Ld32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

__device__ __forceinline__ void Mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float QuadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// Four f16 values of a cache row (f16 or f32 cache), as two packed pairs.
__device__ __forceinline__ uint2 LoadCache4(const void* cache, bool f16, int64_t offset) {
  if (f16) return *reinterpret_cast<const uint2*>(static_cast<const __half*>(cache) + offset);
  const float4 x = *reinterpret_cast<const float4*>(static_cast<const float*>(cache) + offset);
  return make_uint2(PackHalf(x.x, x.y), PackHalf(x.z, x.w));
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
    d[0] = PackHalf(x.x * qscale, x.y * qscale);
    d[1] = PackHalf(x.z * qscale, x.w * qscale);
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
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      const uint16_t* pa = Qs + r0 * LD + kk * 16 + 2 * t;
      const uint32_t af[4] = {Ld32(pa), Ld32(pa + 8 * LD), Ld32(pa + 8), Ld32(pa + 8 * LD + 8)};
#pragma unroll
      for (int nt = 0; nt < kTile / 8; ++nt) {
        const uint16_t* pb = Ks + (nt * 8 + g) * LD + kk * 16 + 2 * t;
        Mma(s[nt], af, Ld32(pb), Ld32(pb + 8));
      }
    }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int key = kt * kTile + nt * 8 + 2 * t + (i & 1), qpos = i < 2 ? qpos0 : qpos1;
        const float x = (key > qpos || key >= n_keys) ? -INFINITY : s[nt][i];
        s[nt][i] = x;
        if (i < 2) mx0 = fmaxf(mx0, x); else mx1 = fmaxf(mx1, x);
      }
    }
    // Position 0 is in the first key tile and precedes every row, so the maxima are finite from
    // then on; a later tile may be wholly masked for a row (its factor is then 1, its terms 0).
    const float mn0 = fmaxf(m0, QuadMax(mx0)), mn1 = fmaxf(m1, QuadMax(mx1));
    const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);
    m0 = mn0;
    m1 = mn1;
    float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - mn0);
      s[nt][1] = exp2f(s[nt][1] - mn0);
      s[nt][2] = exp2f(s[nt][2] - mn1);
      s[nt][3] = exp2f(s[nt][3] - mn1);
      rs0 += s[nt][0] + s[nt][1];
      rs1 += s[nt][2] + s[nt][3];
    }
    l0 = l0 * c0 + rs0;
    l1 = l1 * c1 + rs1;
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) {
      o[nt][0] *= c0;
      o[nt][1] *= c0;
      o[nt][2] *= c1;
      o[nt][3] *= c1;
    }
#pragma unroll
    for (int j = 0; j < kTile / 16; ++j) {
      const uint32_t ap[4] = {PackHalf(s[2 * j][0], s[2 * j][1]), PackHalf(s[2 * j][2], s[2 * j][3]),
                              PackHalf(s[2 * j + 1][0], s[2 * j + 1][1]), PackHalf(s[2 * j + 1][2], s[2 * j + 1][3])};
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt) {
        const uint16_t* pb = Vt + (nt * 8 + g) * LDT + j * 16 + 2 * t;
        Mma(o[nt], ap, Ld32(pb), Ld32(pb + 8));
      }
    }
  }
  const float inv0 = 1.0f / QuadSum(l0), inv1 = 1.0f / QuadSum(l1);
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
