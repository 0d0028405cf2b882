// Causal grouped-query attention for training without the T×T probabilities, in the manner of
// FlashAttention-2: bf16 tensor-core products (mma.sync m16n8k16, fp32 accumulation), an online
// softmax in fp32 registers, and only the log-sum-exp of each query row kept for the backward.
//
// Tiles are 64 queries × 64 keys; a block has 4 warps, warp w owning 16 rows of the tile. The
// products and the online softmax are gpu/ops/mma_tile.cuh's (its header gives the fragment
// layouts): the C fragments of S, packed to bf16, are the A operand of P·V.
//
// Scores are kept pre-multiplied by scale·log2(e), so exp2 replaces exp and the saved
// log-sum-exp is in base 2: lse2 = max + log2(Σ 2^(s − max)).
//
// The backward is deterministic (no atomics): one kernel per 64-key tile accumulates dK and dV
// over the group's query heads and the query tiles in a fixed order; another per 64-query tile
// accumulates dQ over the key tiles. Both recompute P from lse2 and use D = rowsum(dO ⊙ O).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "gpu/ops/mma_tile.cuh"
#include "gpu/train/element_access.cuh"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

constexpr int kTile = 64;     // queries or keys per block
constexpr int kWarps = 4;     // 16 rows each
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;       // bf16 elements of padding per shared row
constexpr float kLog2e = 1.4426950408889634f;

// Four elements from p (16-byte aligned fp32, or 8-byte aligned bf16) as two registers of bf16
// pairs, elements 0 and 2 in the low halves; fp32 is rounded to nearest even.
__device__ __forceinline__ void Load4(const float* p, uint32_t& lo, uint32_t& hi) {
  const float4 x = *reinterpret_cast<const float4*>(p);
  lo = mma::Pack<false>(x.x, x.y);
  hi = mma::Pack<false>(x.z, x.w);
}
__device__ __forceinline__ void Load4(const __nv_bfloat16* p, uint32_t& lo, uint32_t& hi) {
  const uint2 x = *reinterpret_cast<const uint2*>(p);
  lo = x.x;
  hi = x.y;
}

// p[0], p[1] = a, b (p 8-byte aligned fp32, or 4-byte aligned bf16, rounded to nearest even).
__device__ __forceinline__ void StorePair(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void StorePair(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<uint32_t*>(p) = mma::Pack<false>(a, b);
}

// dst[r][c] = bf16(src[row0 + r][c]) for r < rows (zero past T), c < HD, rows ld elements apart;
// kTransposed: dst[c][r] instead (the copy with k contiguous for a product's B operand). E: the
// operands' element type, fp32 or bf16.
template <int HD, bool kTransposed = false, typename E>
__device__ void LoadRows(uint16_t* dst, int ld, const E* src, int64_t ld_src, int row0, int rows, int T) {
  constexpr int kVec = HD / 4;
  for (int i = threadIdx.x; i < rows * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 4;
    uint32_t lo = 0, hi = 0;
    if (row0 + r < T) Load4(src + static_cast<int64_t>(row0 + r) * ld_src + c, lo, hi);
    if constexpr (kTransposed) {
      dst[(c + 0) * ld + r] = static_cast<uint16_t>(lo);
      dst[(c + 1) * ld + r] = static_cast<uint16_t>(lo >> 16);
      dst[(c + 2) * ld + r] = static_cast<uint16_t>(hi);
      dst[(c + 3) * ld + r] = static_cast<uint16_t>(hi >> 16);
    } else {
      uint32_t* d = reinterpret_cast<uint32_t*>(dst + r * ld + c);
      d[0] = lo;
      d[1] = hi;
    }
  }
}

template <int HD, typename E>
__device__ void LoadRowsT(uint16_t* dst, int ldt, const E* src, int64_t ld_src, int row0, int rows, int T) {
  LoadRows<HD, true>(dst, ldt, src, ld_src, row0, rows, T);
}

struct Dims {
  int T, H, KV;
  float scale_log2;  // scale · log2(e)
  // Row strides: of q and dq (ldq), of k, v, dk and dv (ldkv); out and dout are packed (H·hd).
  // The stages keep q, k and v side by side in one product's output, so ldq = ldkv there.
  int64_t ldq, ldkv;
};

// A block of grid (query tiles, B·H): its query tile (the latest, longest rows first), head, and
// where that head's rows start in q and dq (q_off), in out and dout (o_off, rows qd apart) and in
// k and v (kv_off).
struct QueryTile {
  int qt, bh, b, h, kvh;
  int64_t qd, q_off, o_off, kv_off;
};

template <int HD>
__device__ __forceinline__ QueryTile QueryTileOf(const Dims& d) {
  QueryTile x;
  x.qt = (d.T + kTile - 1) / kTile - 1 - static_cast<int>(blockIdx.x);
  x.bh = blockIdx.y;
  x.b = x.bh / d.H;
  x.h = x.bh % d.H;
  x.kvh = x.h / (d.H / d.KV);
  x.qd = int64_t{d.H} * HD;
  x.q_off = int64_t{x.b} * d.T * d.ldq + int64_t{x.h} * HD;
  x.o_off = int64_t{x.b} * d.T * x.qd + int64_t{x.h} * HD;
  x.kv_off = int64_t{x.b} * d.T * d.ldkv + int64_t{x.kvh} * HD;
  return x;
}

// ---------------------------------------------------------------------------------------------
// Forward: block (query tile, b·H + h), the longest rows (latest tiles) first.
template <int HD, typename E>
__global__ void __launch_bounds__(kThreads) FlashForwardKernel(const E* q, const E* k, const E* v, E* out,
                                                               float* lse2, Dims d) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int LD = HD + kPad, LDT = kTile + kPad;
  uint16_t* Qs = smem;                 // [kTile][LD]
  uint16_t* Ks = Qs + kTile * LD;      // [kTile][LD]
  uint16_t* Vt = Ks + kTile * LD;      // [HD][LDT]: V transposed
  const int T = d.T;
  const QueryTile x = QueryTileOf<HD>(d);
  const int qt = x.qt, bh = x.bh;
  const int64_t qd = x.qd, ldq = d.ldq, ldkv = d.ldkv;
  const E* qb = q + x.q_off;
  const E* kb = k + x.kv_off;
  const E* vb = v + x.kv_off;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r0 = qt * kTile + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows

  LoadRows<HD>(Qs, LD, qb, ldq, qt * kTile, kTile, T);
  float o[HD / 8][4] = {};
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();  // every warp is done with the previous K and V
    LoadRows<HD>(Ks, LD, kb, ldkv, kt * kTile, kTile, T);
    LoadRowsT<HD>(Vt, LDT, vb, ldkv, kt * kTile, kTile, T);
    __syncthreads();
    float s[kTile / 8][4] = {};
    mma::ProductABt<false, HD, kTile / 8>(s, Qs, Ks, LD, warp * 16, g, t);
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int col = kt * kTile + nt * 8 + 2 * t + (i & 1), row = i < 2 ? r0 : r1;
        s[nt][i] = (col > row || col >= T) ? -INFINITY : s[nt][i] * d.scale_log2;
      }
    }
    // Key kt·kTile ≤ every row of this tile, so each row has a finite maximum.
    mma::OnlineSoftmaxStep<kTile / 8, HD>(s, o, m0, m1, l0, l1);
    mma::ProductPB<false, kTile / 8, HD>(o, s, Vt, LDT, g, t);
  }
  l0 = mma::QuadSum(l0);
  l1 = mma::QuadSum(l1);
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  E* ob = out + x.o_off;
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    if (r0 < T) StorePair(ob + r0 * qd + col, o[nt][0] * inv0, o[nt][1] * inv0);
    if (r1 < T) StorePair(ob + r1 * qd + col, o[nt][2] * inv1, o[nt][3] * inv1);
  }
  if (t == 0) {
    if (r0 < T) lse2[int64_t{bh} * T + r0] = m0 + log2f(l0);
    if (r1 < T) lse2[int64_t{bh} * T + r1] = m1 + log2f(l1);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, step 1: D[bh][i] = Σ_c dout[b, i, h, c] · out[b, i, h, c]; one warp per row.
template <typename E>
__global__ void RowDotKernel(const E* dout, const E* out, float* D, int T, int H, int hd, int64_t rows) {
  const int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int64_t bh = r / T, i = r % T, b = bh / H, h = bh % H;
  const int64_t off = (b * T + i) * H * hd + h * hd;
  float sum = 0.0f;
  for (int c = lane; c < hd; c += 32) sum += Ld(dout, off + c) * Ld(out, off + c);
#pragma unroll
  for (int m = 16; m > 0; m /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, m);
  if (lane == 0) D[r] = sum;
}

// Backward, step 2: dK and dV of one 64-key tile of one KV head, block (key tile, b·KV + kvh).
// Warp w owns keys kt·64 + 16w + [0, 16) and works on Sᵀ = K·Qᵀ (keys × queries), so P and dS
// come out as the A operands of dV += Pᵀ·dO and dK += dSᵀ·Q. Query tiles are BQ rows.
template <int HD, int BQ, typename E>
__global__ void __launch_bounds__(kThreads) FlashBackwardKvKernel(const E* q, const E* k, const E* v, const E* dout,
                                                                  const float* lse2, const float* D, E* dk, E* dv,
                                                                  Dims d) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int LD = HD + kPad, LDQ = BQ + kPad;
  uint16_t* Ks = smem;              // [kTile][LD]
  uint16_t* Vs = Ks + kTile * LD;   // [kTile][LD]
  uint16_t* Qs = Vs + kTile * LD;   // [BQ][LD]
  uint16_t* dOs = Qs + BQ * LD;     // [BQ][LD]
  uint16_t* Qt = dOs + BQ * LD;     // [HD][LDQ]
  uint16_t* dOt = Qt + HD * LDQ;    // [HD][LDQ]
  float* lse_s = reinterpret_cast<float*>(dOt + HD * LDQ);  // [BQ]
  float* D_s = lse_s + BQ;                                  // [BQ]
  const int T = d.T, group = d.H / d.KV;
  const int kt = blockIdx.x;
  const int bkv = blockIdx.y, b = bkv / d.KV, kvh = bkv % d.KV;
  const int64_t qd = int64_t{d.H} * HD, ldq = d.ldq, ldkv = d.ldkv;
  const E* kb = k + int64_t{b} * T * ldkv + int64_t{kvh} * HD;
  const E* vb = v + int64_t{b} * T * ldkv + int64_t{kvh} * HD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int key0 = kt * kTile + warp * 16 + g, key1 = key0 + 8;  // this thread's two key rows

  LoadRows<HD>(Ks, LD, kb, ldkv, kt * kTile, kTile, T);
  LoadRows<HD>(Vs, LD, vb, ldkv, kt * kTile, kTile, T);
  float dkacc[HD / 8][4] = {}, dvacc[HD / 8][4] = {};
  const int nq = (T + BQ - 1) / BQ;
  for (int gi = 0; gi < group; ++gi) {
    const int h = kvh * group + gi, bh = b * d.H + h;
    const E* qb = q + int64_t{b} * T * ldq + int64_t{h} * HD;
    const E* ob = dout + int64_t{b} * T * qd + int64_t{h} * HD;
    for (int qt = kt * kTile / BQ; qt < nq; ++qt) {
      __syncthreads();  // every warp is done with the previous Q and dO
      LoadRows<HD>(Qs, LD, qb, ldq, qt * BQ, BQ, T);
      LoadRows<HD>(dOs, LD, ob, qd, qt * BQ, BQ, T);
      LoadRowsT<HD>(Qt, LDQ, qb, ldq, qt * BQ, BQ, T);
      LoadRowsT<HD>(dOt, LDQ, ob, qd, qt * BQ, BQ, T);
      for (int i = threadIdx.x; i < BQ; i += blockDim.x) {
        const int row = qt * BQ + i;
        lse_s[i] = row < T ? lse2[int64_t{bh} * T + row] : 0.0f;
        D_s[i] = row < T ? D[int64_t{bh} * T + row] : 0.0f;
      }
      __syncthreads();
      float st[BQ / 8][4] = {}, dpt[BQ / 8][4] = {};
      mma::ProductABt<false, HD, BQ / 8>(st, Ks, Qs, LD, warp * 16, g, t);    // Sᵀ = K·Qᵀ
      mma::ProductABt<false, HD, BQ / 8>(dpt, Vs, dOs, LD, warp * 16, g, t);  // dPᵀ = V·dOᵀ
#pragma unroll
      for (int nt = 0; nt < BQ / 8; ++nt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int c = nt * 8 + 2 * t + (i & 1), query = qt * BQ + c, key = i < 2 ? key0 : key1;
          const bool live = query >= key && query < T && key < T;
          const float p = live ? exp2f(st[nt][i] * d.scale_log2 - lse_s[c]) : 0.0f;
          st[nt][i] = p;
          dpt[nt][i] = p * (dpt[nt][i] - D_s[c]);
        }
      }
      mma::ProductPB<false, BQ / 8, HD>(dvacc, st, dOt, LDQ, g, t);   // dV += Pᵀ·dO
      mma::ProductPB<false, BQ / 8, HD>(dkacc, dpt, Qt, LDQ, g, t);   // dK += dSᵀ·Q
    }
  }
  const float scale = d.scale_log2 / kLog2e;
  E* dkb = dk + int64_t{b} * T * ldkv + int64_t{kvh} * HD;
  E* dvb = dv + int64_t{b} * T * ldkv + int64_t{kvh} * HD;
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    if (key0 < T) {
      StorePair(dkb + key0 * ldkv + col, dkacc[nt][0] * scale, dkacc[nt][1] * scale);
      StorePair(dvb + key0 * ldkv + col, dvacc[nt][0], dvacc[nt][1]);
    }
    if (key1 < T) {
      StorePair(dkb + key1 * ldkv + col, dkacc[nt][2] * scale, dkacc[nt][3] * scale);
      StorePair(dvb + key1 * ldkv + col, dvacc[nt][2], dvacc[nt][3]);
    }
  }
}

// Backward, step 3: dQ of one 64-query tile of one head, block (query tile, b·H + h), the
// longest rows first: dQ = scale · Σ over key tiles of dS·K.
template <int HD, typename E>
__global__ void __launch_bounds__(kThreads) FlashBackwardQKernel(const E* q, const E* k, const E* v, const E* dout,
                                                                 const float* lse2, const float* D, E* dq, Dims d) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int LD = HD + kPad, LDT = kTile + kPad;
  uint16_t* Qs = smem;               // [kTile][LD]
  uint16_t* dOs = Qs + kTile * LD;   // [kTile][LD]
  uint16_t* Ks = dOs + kTile * LD;   // [kTile][LD]
  uint16_t* Vs = Ks + kTile * LD;    // [kTile][LD]
  uint16_t* Kt = Vs + kTile * LD;    // [HD][LDT]
  const int T = d.T;
  const QueryTile x = QueryTileOf<HD>(d);
  const int qt = x.qt, bh = x.bh;
  const int64_t qd = x.qd, ldq = d.ldq, ldkv = d.ldkv;
  const E* qb = q + x.q_off;
  const E* ob = dout + x.o_off;
  const E* kb = k + x.kv_off;
  const E* vb = v + x.kv_off;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r0 = qt * kTile + warp * 16 + g, r1 = r0 + 8;
  const float lse0 = r0 < T ? lse2[int64_t{bh} * T + r0] : 0.0f, lse1 = r1 < T ? lse2[int64_t{bh} * T + r1] : 0.0f;
  const float D0 = r0 < T ? D[int64_t{bh} * T + r0] : 0.0f, D1 = r1 < T ? D[int64_t{bh} * T + r1] : 0.0f;

  LoadRows<HD>(Qs, LD, qb, ldq, qt * kTile, kTile, T);
  LoadRows<HD>(dOs, LD, ob, qd, qt * kTile, kTile, T);
  float dqacc[HD / 8][4] = {};
  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();
    LoadRows<HD>(Ks, LD, kb, ldkv, kt * kTile, kTile, T);
    LoadRows<HD>(Vs, LD, vb, ldkv, kt * kTile, kTile, T);
    LoadRowsT<HD>(Kt, LDT, kb, ldkv, kt * kTile, kTile, T);
    __syncthreads();
    float s[kTile / 8][4] = {}, dp[kTile / 8][4] = {};
    mma::ProductABt<false, HD, kTile / 8>(s, Qs, Ks, LD, warp * 16, g, t);    // S = Q·Kᵀ
    mma::ProductABt<false, HD, kTile / 8>(dp, dOs, Vs, LD, warp * 16, g, t);  // dP = dO·Vᵀ
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int col = kt * kTile + nt * 8 + 2 * t + (i & 1), row = i < 2 ? r0 : r1;
        const bool live = col <= row && col < T;
        const float p = live ? exp2f(s[nt][i] * d.scale_log2 - (i < 2 ? lse0 : lse1)) : 0.0f;
        s[nt][i] = p * (dp[nt][i] - (i < 2 ? D0 : D1));  // dS
      }
    }
    mma::ProductPB<false, kTile / 8, HD>(dqacc, s, Kt, LDT, g, t);  // dQ += dS·K
  }
  const float scale = d.scale_log2 / kLog2e;
  E* dqb = dq + x.q_off;
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    if (r0 < T) StorePair(dqb + r0 * ldq + col, dqacc[nt][0] * scale, dqacc[nt][1] * scale);
    if (r1 < T) StorePair(dqb + r1 * ldq + col, dqacc[nt][2] * scale, dqacc[nt][3] * scale);
  }
}

// ---------------------------------------------------------------------------------------------
template <typename Kernel>
cudaError_t Launch(Kernel kernel, dim3 grid, size_t smem, cudaStream_t s, auto... args) {
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  kernel<<<grid, kThreads, smem, s>>>(args...);
  return cudaGetLastError();
}

constexpr int BackwardQueryTile(int hd) { return hd > 64 ? 32 : 64; }

template <int HD, typename E>
cudaError_t ForwardFor(const E* q, const E* k, const E* v, E* out, float* lse2, int B, Dims d, cudaStream_t s) {
  const size_t smem = sizeof(uint16_t) * (2 * kTile * (HD + kPad) + HD * (kTile + kPad));
  const dim3 grid((d.T + kTile - 1) / kTile, B * d.H);
  return Launch(FlashForwardKernel<HD, E>, grid, smem, s, q, k, v, out, lse2, d);
}

template <int HD, typename E>
cudaError_t BackwardFor(const E* q, const E* k, const E* v, const E* dout, const float* lse2, const float* D, E* dq,
                        E* dk, E* dv, int B, Dims d, cudaStream_t s) {
  constexpr int BQ = BackwardQueryTile(HD);
  const size_t smem_kv = sizeof(uint16_t) * (2 * kTile * (HD + kPad) + 2 * BQ * (HD + kPad) + 2 * HD * (BQ + kPad)) +
                         sizeof(float) * 2 * BQ;
  const dim3 grid_kv((d.T + kTile - 1) / kTile, B * d.KV);
  cudaError_t e = Launch(FlashBackwardKvKernel<HD, BQ, E>, grid_kv, smem_kv, s, q, k, v, dout, lse2, D, dk, dv, d);
  if (e != cudaSuccess) return e;
  const size_t smem_q = sizeof(uint16_t) * (4 * kTile * (HD + kPad) + HD * (kTile + kPad));
  const dim3 grid_q((d.T + kTile - 1) / kTile, B * d.H);
  return Launch(FlashBackwardQKernel<HD, E>, grid_q, smem_q, s, q, k, v, dout, lse2, D, dq, d);
}

template <typename E>
cudaError_t Forward(const E* q, const E* k, const E* v, E* out, float* lse2, int B, int T, int H, int KV, int hd,
                    int64_t ldq, int64_t ldkv, cudaStream_t s) {
  const Dims d{T, H, KV, kLog2e / sqrtf(static_cast<float>(hd)), ldq, ldkv};
  switch (hd) {
    case 32: return ForwardFor<32>(q, k, v, out, lse2, B, d, s);
    case 64: return ForwardFor<64>(q, k, v, out, lse2, B, d, s);
    case 96: return ForwardFor<96>(q, k, v, out, lse2, B, d, s);
    case 128: return ForwardFor<128>(q, k, v, out, lse2, B, d, s);
    default: return cudaErrorInvalidValue;
  }
}

template <typename E>
cudaError_t Backward(const E* q, const E* k, const E* v, const E* out, const E* dout, const float* lse2, float* D,
                     E* dq, E* dk, E* dv, int B, int T, int H, int KV, int hd, int64_t ldq, int64_t ldkv,
                     cudaStream_t s) {
  const int64_t rows = int64_t{B} * H * T;
  RowDotKernel<E><<<static_cast<unsigned>((rows * 32 + 255) / 256), 256, 0, s>>>(dout, out, D, T, H, hd, rows);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const Dims d{T, H, KV, kLog2e / sqrtf(static_cast<float>(hd)), ldq, ldkv};
  switch (hd) {
    case 32: return BackwardFor<32>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    case 64: return BackwardFor<64>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    case 96: return BackwardFor<96>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    case 128: return BackwardFor<128>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool FlashAttentionSupportsHeadDim(int64_t hd) { return hd == 32 || hd == 64 || hd == 96 || hd == 128; }

cudaError_t LaunchFlashAttentionForward(const float* q, const float* k, const float* v, float* out, float* lse2,
                                        int B, int T, int H, int KV, int hd, cudaStream_t s, int64_t ldq,
                                        int64_t ldkv) {
  return Forward(q, k, v, out, lse2, B, T, H, KV, hd, ldq ? ldq : int64_t{H} * hd, ldkv ? ldkv : int64_t{KV} * hd, s);
}

cudaError_t LaunchFlashAttentionForward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                        __nv_bfloat16* out, float* lse2, int B, int T, int H, int KV, int hd,
                                        cudaStream_t s, int64_t ldq, int64_t ldkv) {
  return Forward(q, k, v, out, lse2, B, T, H, KV, hd, ldq ? ldq : int64_t{H} * hd, ldkv ? ldkv : int64_t{KV} * hd, s);
}

cudaError_t LaunchFlashAttentionBackward(const float* q, const float* k, const float* v, const float* out,
                                         const float* dout, const float* lse2, float* D, float* dq, float* dk,
                                         float* dv, int B, int T, int H, int KV, int hd, cudaStream_t s, int64_t ldq,
                                         int64_t ldkv) {
  return Backward(q, k, v, out, dout, lse2, D, dq, dk, dv, B, T, H, KV, hd, ldq ? ldq : int64_t{H} * hd,
                  ldkv ? ldkv : int64_t{KV} * hd, s);
}

cudaError_t LaunchFlashAttentionBackward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                         const __nv_bfloat16* out, const __nv_bfloat16* dout, const float* lse2,
                                         float* D, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, int B,
                                         int T, int H, int KV, int hd, cudaStream_t s, int64_t ldq, int64_t ldkv) {
  return Backward(q, k, v, out, dout, lse2, D, dq, dk, dv, B, T, H, KV, hd, ldq ? ldq : int64_t{H} * hd,
                  ldkv ? ldkv : int64_t{KV} * hd, s);
}

}  // namespace lms::gpu::train
