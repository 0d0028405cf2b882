// Warp-level pieces of the tiled attention kernels (gpu/ops/attention_prefill.cu,
// gpu/train/attention_flash.cu): tensor-core products with mma.sync m16n8k16 on 16-bit operands
// (bf16, or f16 where kHalf) and fp32 accumulators, fed from tiles in shared memory.
//
// Fragment layouts, from the PTX ISA (g = lane / 4, t = lane % 4):
//   A (16×16, row-major): a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B (16×8, k×n):        b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C (16×8, fp32):       c0, c1 = C[g][2t], C[g][2t+1];  c2, c3 = C[g+8][2t], C[g+8][2t+1]
// So the C fragments of two neighbouring 8-column tiles, packed to 16 bits, are the A fragment
// of the 16 columns they cover: a product's result feeds the next product without a trip
// through shared memory. Operands read along k in pairs must have k contiguous in shared memory
// (a transposed copy where the global layout has k strided); rows padded by 8 elements put the
// 32 lanes' 4-byte reads in distinct banks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace lms::gpu::mma {

// Two floats as one register of 16-bit values (lo in the low half), rounded to nearest even.
template <bool kHalf>
__device__ __forceinline__ uint32_t Pack(float lo, float hi) {
  if constexpr (kHalf) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

__device__ __forceinline__ uint32_t Ld32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// c += a·b for one 16×8 tile.
template <bool kHalf>
__device__ __forceinline__ void Mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  if constexpr (kHalf) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// The A fragment of rows [row0, row0 + 16), columns [k0, k0 + 16) of a row-major 16-bit tile.
__device__ __forceinline__ void LoadA(uint32_t a[4], const uint16_t* s, int ld, int row0, int k0, int g, int t) {
  const uint16_t* p = s + (row0 + g) * ld + k0 + 2 * t;
  a[0] = Ld32(p);
  a[1] = Ld32(p + 8 * ld);
  a[2] = Ld32(p + 8);
  a[3] = Ld32(p + 8 * ld + 8);
}

// The B fragment whose column n = g is row `row` of a 16-bit tile with k contiguous, k from k0.
__device__ __forceinline__ void LoadB(uint32_t& b0, uint32_t& b1, const uint16_t* s, int ld, int row, int k0, int t) {
  const uint16_t* p = s + row * ld + k0 + 2 * t;
  b0 = Ld32(p);
  b1 = Ld32(p + 8);
}

// The A fragment of 16 rows × 16 columns made of two C fragments (columns 0–7 and 8–15).
template <bool kHalf>
__device__ __forceinline__ void PackA(uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = Pack<kHalf>(lo[0], lo[1]);
  a[1] = Pack<kHalf>(lo[2], lo[3]);
  a[2] = Pack<kHalf>(hi[0], hi[1]);
  a[3] = Pack<kHalf>(hi[2], hi[3]);
}

__device__ __forceinline__ float QuadMax(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float QuadSum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// c (16 × 8·NT) += A·Bᵀ: A the warp's 16 rows from row0 of a row-major tile, B the tile's rows
// 0 .. 8·NT − 1 (so Bᵀ has k contiguous), both HD wide with row stride ld.
template <bool kHalf, int HD, int NT>
__device__ __forceinline__ void ProductABt(float (&c)[NT][4], const uint16_t* A, const uint16_t* B, int ld, int row0,
                                           int g, int t) {
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    uint32_t a[4];
    LoadA(a, A, ld, row0, kk * 16, g, t);
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      uint32_t b0, b1;
      LoadB(b0, b1, B, ld, nt * 8 + g, kk * 16, t);
      Mma<kHalf>(c[nt], a, b0, b1);
    }
  }
}

// acc (16 × HD) += P·B: P (16 × 8·NP) as C fragments in registers, B (8·NP × HD) given
// transposed in shared memory (Bt, HD rows of ldt elements).
template <bool kHalf, int NP, int HD>
__device__ __forceinline__ void ProductPB(float (&acc)[HD / 8][4], const float (&p)[NP][4], const uint16_t* Bt,
                                          int ldt, int g, int t) {
#pragma unroll
  for (int j = 0; j < NP / 2; ++j) {
    uint32_t a[4];
    PackA<kHalf>(a, p[2 * j], p[2 * j + 1]);
#pragma unroll
    for (int nt = 0; nt < HD / 8; ++nt) {
      uint32_t b0, b1;
      LoadB(b0, b1, Bt, ldt, nt * 8 + g, j * 16, t);
      Mma<kHalf>(acc[nt], a, b0, b1);
    }
  }
}

// One key tile of the online softmax over a thread's two rows (C-fragment rows g and g + 8):
// s holds the tile's scores in the base-2 domain (masked ones −∞) and becomes 2^(s − max); the
// running maxima m, partial sums l (this thread's columns; the quad's are summed at the end) and
// the accumulator o are rescaled. Each row must have a finite maximum by its first tile.
template <int NT, int HD>
__device__ __forceinline__ void OnlineSoftmaxStep(float (&s)[NT][4], float (&o)[HD / 8][4], float& m0, float& m1,
                                                  float& l0, float& l1) {
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
    mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
  }
  const float mn0 = fmaxf(m0, QuadMax(mx0)), mn1 = fmaxf(m1, QuadMax(mx1));
  const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);  // 0 on the first tile
  m0 = mn0;
  m1 = mn1;
  float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
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
}

}  // namespace lms::gpu::mma
