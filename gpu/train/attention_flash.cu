// Causal grouped-query attention for training without the T×T probabilities, in the manner of
// FlashAttention-2: bf16 tensor-core products (mma.sync m16n8k16, fp32 accumulation), an online
// softmax in fp32 registers, and only the log-sum-exp of each query row kept for the backward.
//
// Tiles are 64 queries × 64 keys; a block has 4 warps, warp w owning 16 rows of the tile. The
// fragments follow the PTX ISA's layouts for m16n8k16 (g = lane / 4, t = lane % 4):
//   A (16×16, row-major): a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B (16×8, k×n):        b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C (16×8, fp32):       c0, c1 = C[g][2t], C[g][2t+1];  c2, c3 = C[g+8][2t], C[g+8][2t+1]
// so the C fragments of two neighbouring 8-column tiles of S are, packed to bf16, the A fragment
// of the 16 keys they cover, and P·V needs no trip through shared memory. Operands that the
// products read along k in pairs sit in shared memory with k contiguous (a transposed copy where
// the global layout has k strided), rows padded by 8 elements so that the 32 lanes' 4-byte reads
// fall in distinct banks.
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

#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

constexpr int kTile = 64;     // queries or keys per block
constexpr int kWarps = 4;     // 16 rows each
constexpr int kThreads = kWarps * 32;
constexpr int kPad = 8;       // bf16 elements of padding per shared row
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the low 16 bits
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ uint16_t Bf16Bits(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }

__device__ __forceinline__ uint32_t Ld32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// c += a·b for one 16×8 tile.
__device__ __forceinline__ void Mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The A fragment of rows [row0, row0 + 16), columns [k0, k0 + 16) of a row-major bf16 tile.
__device__ __forceinline__ void LoadA(uint32_t a[4], const uint16_t* s, int ld, int row0, int k0, int g, int t) {
  const uint16_t* p = s + (row0 + g) * ld + k0 + 2 * t;
  a[0] = Ld32(p);
  a[1] = Ld32(p + 8 * ld);
  a[2] = Ld32(p + 8);
  a[3] = Ld32(p + 8 * ld + 8);
}

// The A fragment of 16 rows × 16 columns made of two C fragments (columns 0–7 and 8–15).
__device__ __forceinline__ void PackA(uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = PackBf16(lo[0], lo[1]);
  a[1] = PackBf16(lo[2], lo[3]);
  a[2] = PackBf16(hi[0], hi[1]);
  a[3] = PackBf16(hi[2], hi[3]);
}

// The B fragment whose column n = g is row `row` of a bf16 tile with k contiguous, k from k0.
__device__ __forceinline__ void LoadB(uint32_t& b0, uint32_t& b1, const uint16_t* s, int ld, int row, int k0, int t) {
  const uint16_t* p = s + row * ld + k0 + 2 * t;
  b0 = Ld32(p);
  b1 = Ld32(p + 8);
}

__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float QuadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// dst[r][c] = bf16(src[row0 + r][c]) for r < rows (zero past T), c < HD; rows ld elements apart.
template <int HD>
__device__ void LoadRows(uint16_t* dst, int ld, const float* src, int64_t ld_src, int row0, int rows, int T) {
  constexpr int kVec = HD / 4;
  for (int i = threadIdx.x; i < rows * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 4;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row0 + r < T) x = *reinterpret_cast<const float4*>(src + static_cast<int64_t>(row0 + r) * ld_src + c);
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + r * ld + c);
    d[0] = PackBf16(x.x, x.y);
    d[1] = PackBf16(x.z, x.w);
  }
}

// dst[c][r] = bf16(src[row0 + r][c]): the transpose, rows of dst ldt elements apart.
template <int HD>
__device__ void LoadRowsT(uint16_t* dst, int ldt, const float* src, int64_t ld_src, int row0, int rows, int T) {
  constexpr int kVec = HD / 4;
  for (int i = threadIdx.x; i < rows * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 4;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row0 + r < T) x = *reinterpret_cast<const float4*>(src + static_cast<int64_t>(row0 + r) * ld_src + c);
    dst[(c + 0) * ldt + r] = Bf16Bits(x.x);
    dst[(c + 1) * ldt + r] = Bf16Bits(x.y);
    dst[(c + 2) * ldt + r] = Bf16Bits(x.z);
    dst[(c + 3) * ldt + r] = Bf16Bits(x.w);
  }
}

struct Dims {
  int T, H, KV;
  float scale_log2;  // scale · log2(e)
};

// ---------------------------------------------------------------------------------------------
// Forward: block (query tile, b·H + h), the longest rows (latest tiles) first.
template <int HD>
__global__ void __launch_bounds__(kThreads) FlashForwardKernel(const float* q, const float* k, const float* v,
                                                               float* out, float* lse2, Dims d) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int LD = HD + kPad, LDT = kTile + kPad;
  uint16_t* Qs = smem;                 // [kTile][LD]
  uint16_t* Ks = Qs + kTile * LD;      // [kTile][LD]
  uint16_t* Vt = Ks + kTile * LD;      // [HD][LDT]: V transposed
  const int T = d.T, n_tiles = (T + kTile - 1) / kTile;
  const int qt = n_tiles - 1 - static_cast<int>(blockIdx.x);
  const int bh = blockIdx.y, b = bh / d.H, h = bh % d.H, kvh = h / (d.H / d.KV);
  const int64_t qd = int64_t{d.H} * HD, kvd = int64_t{d.KV} * HD;
  const float* qb = q + int64_t{b} * T * qd + int64_t{h} * HD;
  const float* kb = k + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  const float* vb = v + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r0 = qt * kTile + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows

  LoadRows<HD>(Qs, LD, qb, qd, qt * kTile, kTile, T);
  float o[HD / 8][4] = {};
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();  // every warp is done with the previous K and V
    LoadRows<HD>(Ks, LD, kb, kvd, kt * kTile, kTile, T);
    LoadRowsT<HD>(Vt, LDT, vb, kvd, kt * kTile, kTile, T);
    __syncthreads();
    float s[kTile / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a[4];
      LoadA(a, Qs, LD, warp * 16, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < kTile / 8; ++nt) {
        uint32_t b0, b1;
        LoadB(b0, b1, Ks, LD, nt * 8 + g, kk * 16, t);
        Mma(s[nt], a, b0, b1);
      }
    }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int col = kt * kTile + nt * 8 + 2 * t + (i & 1), row = i < 2 ? r0 : r1;
        const float x = (col > row || col >= T) ? -INFINITY : s[nt][i] * d.scale_log2;
        s[nt][i] = x;
        if (i < 2) mx0 = fmaxf(mx0, x); else mx1 = fmaxf(mx1, x);
      }
    }
    // Key kt·kTile ≤ every row of this tile, so each row has a finite maximum.
    const float mn0 = fmaxf(m0, QuadMax(mx0)), mn1 = fmaxf(m1, QuadMax(mx1));
    const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);  // 0 on the first tile
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
    l0 = l0 * c0 + rs0;  // this thread's columns only; the quad's parts are summed at the end
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
      uint32_t a[4];
      PackA(a, s[2 * j], s[2 * j + 1]);
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt) {
        uint32_t b0, b1;
        LoadB(b0, b1, Vt, LDT, nt * 8 + g, j * 16, t);
        Mma(o[nt], a, b0, b1);
      }
    }
  }
  l0 = QuadSum(l0);
  l1 = QuadSum(l1);
  const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
  float* ob = out + int64_t{b} * T * qd + int64_t{h} * HD;
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    if (r0 < T) *reinterpret_cast<float2*>(ob + r0 * qd + col) = make_float2(o[nt][0] * inv0, o[nt][1] * inv0);
    if (r1 < T) *reinterpret_cast<float2*>(ob + r1 * qd + col) = make_float2(o[nt][2] * inv1, o[nt][3] * inv1);
  }
  if (t == 0) {
    if (r0 < T) lse2[int64_t{bh} * T + r0] = m0 + log2f(l0);
    if (r1 < T) lse2[int64_t{bh} * T + r1] = m1 + log2f(l1);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, step 1: D[bh][i] = Σ_c dout[b, i, h, c] · out[b, i, h, c]; one warp per row.
__global__ void RowDotKernel(const float* dout, const float* out, float* D, int T, int H, int hd, int64_t rows) {
  const int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int64_t bh = r / T, i = r % T, b = bh / H, h = bh % H;
  const int64_t off = (b * T + i) * H * hd + h * hd;
  float sum = 0.0f;
  for (int c = lane; c < hd; c += 32) sum += dout[off + c] * out[off + c];
#pragma unroll
  for (int m = 16; m > 0; m /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, m);
  if (lane == 0) D[r] = sum;
}

// Backward, step 2: dK and dV of one 64-key tile of one KV head, block (key tile, b·KV + kvh).
// Warp w owns keys kt·64 + 16w + [0, 16) and works on Sᵀ = K·Qᵀ (keys × queries), so P and dS
// come out as the A operands of dV += Pᵀ·dO and dK += dSᵀ·Q. Query tiles are BQ rows.
template <int HD, int BQ>
__global__ void __launch_bounds__(kThreads) FlashBackwardKvKernel(const float* q, const float* k, const float* v,
                                                                  const float* dout, const float* lse2,
                                                                  const float* D, float* dk, float* dv, Dims d) {
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
  const int64_t qd = int64_t{d.H} * HD, kvd = int64_t{d.KV} * HD;
  const float* kb = k + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  const float* vb = v + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int key0 = kt * kTile + warp * 16 + g, key1 = key0 + 8;  // this thread's two key rows

  LoadRows<HD>(Ks, LD, kb, kvd, kt * kTile, kTile, T);
  LoadRows<HD>(Vs, LD, vb, kvd, kt * kTile, kTile, T);
  float dkacc[HD / 8][4] = {}, dvacc[HD / 8][4] = {};
  const int nq = (T + BQ - 1) / BQ;
  for (int gi = 0; gi < group; ++gi) {
    const int h = kvh * group + gi, bh = b * d.H + h;
    const float* qb = q + int64_t{b} * T * qd + int64_t{h} * HD;
    const float* ob = dout + int64_t{b} * T * qd + int64_t{h} * HD;
    for (int qt = kt * kTile / BQ; qt < nq; ++qt) {
      __syncthreads();  // every warp is done with the previous Q and dO
      LoadRows<HD>(Qs, LD, qb, qd, qt * BQ, BQ, T);
      LoadRows<HD>(dOs, LD, ob, qd, qt * BQ, BQ, T);
      LoadRowsT<HD>(Qt, LDQ, qb, qd, qt * BQ, BQ, T);
      LoadRowsT<HD>(dOt, LDQ, ob, qd, qt * BQ, BQ, T);
      for (int i = threadIdx.x; i < BQ; i += blockDim.x) {
        const int row = qt * BQ + i;
        lse_s[i] = row < T ? lse2[int64_t{bh} * T + row] : 0.0f;
        D_s[i] = row < T ? D[int64_t{bh} * T + row] : 0.0f;
      }
      __syncthreads();
      float st[BQ / 8][4] = {}, dpt[BQ / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        uint32_t ak[4], av[4];
        LoadA(ak, Ks, LD, warp * 16, kk * 16, g, t);
        LoadA(av, Vs, LD, warp * 16, kk * 16, g, t);
#pragma unroll
        for (int nt = 0; nt < BQ / 8; ++nt) {
          uint32_t b0, b1;
          LoadB(b0, b1, Qs, LD, nt * 8 + g, kk * 16, t);
          Mma(st[nt], ak, b0, b1);   // Sᵀ = K·Qᵀ
          LoadB(b0, b1, dOs, LD, nt * 8 + g, kk * 16, t);
          Mma(dpt[nt], av, b0, b1);  // dPᵀ = V·dOᵀ
        }
      }
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
#pragma unroll
      for (int j = 0; j < BQ / 16; ++j) {
        uint32_t ap[4], as[4];
        PackA(ap, st[2 * j], st[2 * j + 1]);
        PackA(as, dpt[2 * j], dpt[2 * j + 1]);
#pragma unroll
        for (int nt = 0; nt < HD / 8; ++nt) {
          uint32_t b0, b1;
          LoadB(b0, b1, dOt, LDQ, nt * 8 + g, j * 16, t);
          Mma(dvacc[nt], ap, b0, b1);  // dV += Pᵀ·dO
          LoadB(b0, b1, Qt, LDQ, nt * 8 + g, j * 16, t);
          Mma(dkacc[nt], as, b0, b1);  // dK += dSᵀ·Q
        }
      }
    }
  }
  const float scale = d.scale_log2 / kLog2e;
  float* dkb = dk + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  float* dvb = dv + int64_t{b} * T * kvd + int64_t{kvh} * HD;
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    if (key0 < T) {
      *reinterpret_cast<float2*>(dkb + key0 * kvd + col) = make_float2(dkacc[nt][0] * scale, dkacc[nt][1] * scale);
      *reinterpret_cast<float2*>(dvb + key0 * kvd + col) = make_float2(dvacc[nt][0], dvacc[nt][1]);
    }
    if (key1 < T) {
      *reinterpret_cast<float2*>(dkb + key1 * kvd + col) = make_float2(dkacc[nt][2] * scale, dkacc[nt][3] * scale);
      *reinterpret_cast<float2*>(dvb + key1 * kvd + col) = make_float2(dvacc[nt][2], dvacc[nt][3]);
    }
  }
}

// Backward, step 3: dQ of one 64-query tile of one head, block (query tile, b·H + h), the
// longest rows first: dQ = scale · Σ over key tiles of dS·K.
template <int HD>
__global__ void __launch_bounds__(kThreads) FlashBackwardQKernel(const float* q, const float* k, const float* v,
                                                                 const float* dout, const float* lse2, const float* D,
                                                                 float* dq, Dims d) {
  extern __shared__ __align__(16) uint16_t smem[];
  constexpr int LD = HD + kPad, LDT = kTile + kPad;
  uint16_t* Qs = smem;               // [kTile][LD]
  uint16_t* dOs = Qs + kTile * LD;   // [kTile][LD]
  uint16_t* Ks = dOs + kTile * LD;   // [kTile][LD]
  uint16_t* Vs = Ks + kTile * LD;    // [kTile][LD]
  uint16_t* Kt = Vs + kTile * LD;    // [HD][LDT]
  const int T = d.T, n_tiles = (T + kTile - 1) / kTile;
  const int qt = n_tiles - 1 - static_cast<int>(blockIdx.x);
  const int bh = blockIdx.y, b = bh / d.H, h = bh % d.H, kvh = h / (d.H / d.KV);
  const int64_t qd = int64_t{d.H} * HD, kvd = int64_t{d.KV} * HD;
  const float* qb = q + int64_t{b} * T * qd + int64_t{h} * HD;
  const float* ob = dout + int64_t{b} * T * qd + int64_t{h} * HD;
  const float* kb = k + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  const float* vb = v + int64_t{b} * T * kvd + int64_t{kvh} * HD;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int r0 = qt * kTile + warp * 16 + g, r1 = r0 + 8;
  const float lse0 = r0 < T ? lse2[int64_t{bh} * T + r0] : 0.0f, lse1 = r1 < T ? lse2[int64_t{bh} * T + r1] : 0.0f;
  const float D0 = r0 < T ? D[int64_t{bh} * T + r0] : 0.0f, D1 = r1 < T ? D[int64_t{bh} * T + r1] : 0.0f;

  LoadRows<HD>(Qs, LD, qb, qd, qt * kTile, kTile, T);
  LoadRows<HD>(dOs, LD, ob, qd, qt * kTile, kTile, T);
  float dqacc[HD / 8][4] = {};
  for (int kt = 0; kt <= qt; ++kt) {
    __syncthreads();
    LoadRows<HD>(Ks, LD, kb, kvd, kt * kTile, kTile, T);
    LoadRows<HD>(Vs, LD, vb, kvd, kt * kTile, kTile, T);
    LoadRowsT<HD>(Kt, LDT, kb, kvd, kt * kTile, kTile, T);
    __syncthreads();
    float s[kTile / 8][4] = {}, dp[kTile / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t aq[4], ao[4];
      LoadA(aq, Qs, LD, warp * 16, kk * 16, g, t);
      LoadA(ao, dOs, LD, warp * 16, kk * 16, g, t);
#pragma unroll
      for (int nt = 0; nt < kTile / 8; ++nt) {
        uint32_t b0, b1;
        LoadB(b0, b1, Ks, LD, nt * 8 + g, kk * 16, t);
        Mma(s[nt], aq, b0, b1);   // S = Q·Kᵀ
        LoadB(b0, b1, Vs, LD, nt * 8 + g, kk * 16, t);
        Mma(dp[nt], ao, b0, b1);  // dP = dO·Vᵀ
      }
    }
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
#pragma unroll
    for (int j = 0; j < kTile / 16; ++j) {
      uint32_t a[4];
      PackA(a, s[2 * j], s[2 * j + 1]);
#pragma unroll
      for (int nt = 0; nt < HD / 8; ++nt) {
        uint32_t b0, b1;
        LoadB(b0, b1, Kt, LDT, nt * 8 + g, j * 16, t);
        Mma(dqacc[nt], a, b0, b1);  // dQ += dS·K
      }
    }
  }
  const float scale = d.scale_log2 / kLog2e;
  float* dqb = dq + int64_t{b} * T * qd + int64_t{h} * HD;
#pragma unroll
  for (int nt = 0; nt < HD / 8; ++nt) {
    const int col = nt * 8 + 2 * t;
    if (r0 < T) *reinterpret_cast<float2*>(dqb + r0 * qd + col) = make_float2(dqacc[nt][0] * scale, dqacc[nt][1] * scale);
    if (r1 < T) *reinterpret_cast<float2*>(dqb + r1 * qd + col) = make_float2(dqacc[nt][2] * scale, dqacc[nt][3] * scale);
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

template <int HD>
cudaError_t ForwardFor(const float* q, const float* k, const float* v, float* out, float* lse2, int B, Dims d,
                       cudaStream_t s) {
  const size_t smem = sizeof(uint16_t) * (2 * kTile * (HD + kPad) + HD * (kTile + kPad));
  const dim3 grid((d.T + kTile - 1) / kTile, B * d.H);
  return Launch(FlashForwardKernel<HD>, grid, smem, s, q, k, v, out, lse2, d);
}

template <int HD>
cudaError_t BackwardFor(const float* q, const float* k, const float* v, const float* dout, const float* lse2,
                        const float* D, float* dq, float* dk, float* dv, int B, Dims d, cudaStream_t s) {
  constexpr int BQ = BackwardQueryTile(HD);
  const size_t smem_kv = sizeof(uint16_t) * (2 * kTile * (HD + kPad) + 2 * BQ * (HD + kPad) + 2 * HD * (BQ + kPad)) +
                         sizeof(float) * 2 * BQ;
  const dim3 grid_kv((d.T + kTile - 1) / kTile, B * d.KV);
  cudaError_t e = Launch(FlashBackwardKvKernel<HD, BQ>, grid_kv, smem_kv, s, q, k, v, dout, lse2, D, dk, dv, d);
  if (e != cudaSuccess) return e;
  const size_t smem_q = sizeof(uint16_t) * (4 * kTile * (HD + kPad) + HD * (kTile + kPad));
  const dim3 grid_q((d.T + kTile - 1) / kTile, B * d.H);
  return Launch(FlashBackwardQKernel<HD>, grid_q, smem_q, s, q, k, v, dout, lse2, D, dq, d);
}

}  // namespace

bool FlashAttentionSupportsHeadDim(int64_t hd) { return hd == 32 || hd == 64 || hd == 96 || hd == 128; }

cudaError_t LaunchFlashAttentionForward(const float* q, const float* k, const float* v, float* out, float* lse2,
                                        int B, int T, int H, int KV, int hd, cudaStream_t s) {
  const Dims d{T, H, KV, kLog2e / sqrtf(static_cast<float>(hd))};
  switch (hd) {
    case 32: return ForwardFor<32>(q, k, v, out, lse2, B, d, s);
    case 64: return ForwardFor<64>(q, k, v, out, lse2, B, d, s);
    case 96: return ForwardFor<96>(q, k, v, out, lse2, B, d, s);
    case 128: return ForwardFor<128>(q, k, v, out, lse2, B, d, s);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t LaunchFlashAttentionBackward(const float* q, const float* k, const float* v, const float* out,
                                         const float* dout, const float* lse2, float* D, float* dq, float* dk,
                                         float* dv, int B, int T, int H, int KV, int hd, cudaStream_t s) {
  const int64_t rows = int64_t{B} * H * T;
  RowDotKernel<<<static_cast<unsigned>((rows * 32 + 255) / 256), 256, 0, s>>>(dout, out, D, T, H, hd, rows);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const Dims d{T, H, KV, kLog2e / sqrtf(static_cast<float>(hd))};
  switch (hd) {
    case 32: return BackwardFor<32>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    case 64: return BackwardFor<64>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    case 96: return BackwardFor<96>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    case 128: return BackwardFor<128>(q, k, v, dout, lse2, D, dq, dk, dv, B, d, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace lms::gpu::train
