// Device-side reading of the stored formats (ggml block layouts, see core/tensor/quant_blocks.h):
// one element at a time, or a 32-element chunk (a Q4_0/Q4_1/Q8_0 block, a 32-element sub-block
// of a Q4_K/Q6_K super-block, or 32 consecutive plain values). Same float operations in the same
// order as core's DequantizeRow (products and sums kept apart by MulAdd, which nvcc would
// otherwise fuse into one FMA), so values match the CPU bit for bit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "core/tensor/quant_blocks.h"
#include "core/tensor/types.h"

// Host and device: the host side lets the GPU tests check these functions against core's
// DequantizeRow on any machine (see dequant_host.cu).
#define LMS_HD __host__ __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define LMS_UNROLL _Pragma("unroll")
#else
#define LMS_UNROLL  // the host compiler warns about the pragma
#endif

namespace lms::gpu {

LMS_HD float HalfBits(uint16_t h) { return __half2float(__ushort_as_half(h)); }
LMS_HD float Bf16Bits(uint16_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
#else
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}
// a * b + c and a * b - c rounded after each operation (never fused into one FMA), as the CPU
// computes them.
LMS_HD float MulAdd(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(__fmul_rn(a, b), c);
#else
  const volatile float p = a * b;
  return p + c;
#endif
}
LMS_HD float MulSub(float a, float b, float c) { return MulAdd(a, b, -c); }

// Bytes are read through uint8_t loads: GGUF rows carry no alignment beyond 1 for the 2-byte
// fields of odd-sized blocks.
LMS_HD uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Q4_K: the 6-bit scale and min of sub-block j (ggml's get_scale_min_k4).
LMS_HD void Q4KScaleMinDev(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The 32 values of chunk c (elements [32c, 32c+32)) of a row of type T.
template <TensorType T>
LMS_HD void DequantChunk32(const uint8_t* row, int64_t c, float out[32]) {
  if constexpr (T == TensorType::kF32) {
    const float* p = reinterpret_cast<const float*>(row) + c * 32;
LMS_UNROLL
    for (int i = 0; i < 32; ++i) out[i] = p[i];
  } else if constexpr (T == TensorType::kF16) {
    const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + c * 32;
LMS_UNROLL
    for (int i = 0; i < 32; ++i) out[i] = HalfBits(p[i]);
  } else if constexpr (T == TensorType::kBF16) {
    const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + c * 32;
LMS_UNROLL
    for (int i = 0; i < 32; ++i) out[i] = Bf16Bits(p[i]);
  } else if constexpr (T == TensorType::kQ8_0) {
    const uint8_t* b = row + c * 34;
    const float d = HalfBits(LoadU16(b));
    const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
LMS_UNROLL
    for (int i = 0; i < 32; ++i) out[i] = qs[i] * d;
  } else if constexpr (T == TensorType::kQ4_0) {
    const uint8_t* b = row + c * 18;
    const float d = HalfBits(LoadU16(b));
    const uint8_t* qs = b + 2;
LMS_UNROLL
    for (int i = 0; i < 16; ++i) {
      out[i] = static_cast<float>((qs[i] & 0x0F) - 8) * d;
      out[i + 16] = static_cast<float>((qs[i] >> 4) - 8) * d;
    }
  } else if constexpr (T == TensorType::kQ4_1) {
    const uint8_t* b = row + c * 20;
    const float d = HalfBits(LoadU16(b));
    const float m = HalfBits(LoadU16(b + 2));
    const uint8_t* qs = b + 4;
LMS_UNROLL
    for (int i = 0; i < 16; ++i) {
      out[i] = MulAdd(static_cast<float>(qs[i] & 0x0F), d, m);
      out[i + 16] = MulAdd(static_cast<float>(qs[i] >> 4), d, m);
    }
  } else if constexpr (T == TensorType::kQ4_K) {
    const uint8_t* b = row + (c / 8) * 144;
    const int j = static_cast<int>(c % 8);
    const float d = HalfBits(LoadU16(b));
    const float dmin = HalfBits(LoadU16(b + 2));
    int sc, mn;
    Q4KScaleMinDev(j, b + 4, &sc, &mn);
    const float d1 = d * sc, m1 = dmin * mn;
    const uint8_t* q = b + 16 + 32 * (j / 2);
    const int shift = (j & 1) ? 4 : 0;
LMS_UNROLL
    for (int l = 0; l < 32; ++l) out[l] = MulSub(d1, static_cast<float>((q[l] >> shift) & 0xF), m1);
  } else if constexpr (T == TensorType::kQ6_K) {
    const uint8_t* b = row + (c / 8) * 210;
    const int j = static_cast<int>(c % 8);
    const int half = j / 4, quarter = j % 4;
    const uint8_t* ql = b + 64 * half + 32 * (quarter & 1);
    const uint8_t* qh = b + 128 + 32 * half;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * half + 2 * quarter;
    const float d = HalfBits(LoadU16(b + 208));
    const int lshift = quarter >= 2 ? 4 : 0, hshift = 2 * quarter;
LMS_UNROLL
    for (int l = 0; l < 32; ++l) {
      const int q = (((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32;
      out[l] = d * sc[l / 16] * static_cast<float>(q);
    }
  }
}

// Element i of a row of runtime type t (slow path: embedding rows, weight dequantization).
LMS_HD float LoadElement(TensorType t, const uint8_t* row, int64_t i) {
  switch (t) {
    case TensorType::kF32: return reinterpret_cast<const float*>(row)[i];
    case TensorType::kF16: return HalfBits(reinterpret_cast<const uint16_t*>(row)[i]);
    case TensorType::kBF16: return Bf16Bits(reinterpret_cast<const uint16_t*>(row)[i]);
    case TensorType::kQ8_0: {
      const uint8_t* b = row + (i / 32) * 34;
      return reinterpret_cast<const int8_t*>(b + 2)[i % 32] * HalfBits(LoadU16(b));
    }
    case TensorType::kQ4_0: {
      const uint8_t* b = row + (i / 32) * 18;
      const int j = static_cast<int>(i % 32);
      const int q = j < 16 ? (b[2 + j] & 0x0F) : (b[2 + j - 16] >> 4);
      return static_cast<float>(q - 8) * HalfBits(LoadU16(b));
    }
    case TensorType::kQ4_1: {
      const uint8_t* b = row + (i / 32) * 20;
      const int j = static_cast<int>(i % 32);
      const int q = j < 16 ? (b[4 + j] & 0x0F) : (b[4 + j - 16] >> 4);
      return MulAdd(static_cast<float>(q), HalfBits(LoadU16(b)), HalfBits(LoadU16(b + 2)));
    }
    case TensorType::kQ4_K: {
      const uint8_t* b = row + (i / 256) * 144;
      const int e = static_cast<int>(i % 256), j = e / 32, l = e % 32;
      int sc, mn;
      Q4KScaleMinDev(j, b + 4, &sc, &mn);
      const float d1 = HalfBits(LoadU16(b)) * sc, m1 = HalfBits(LoadU16(b + 2)) * mn;
      const int q = (b[16 + 32 * (j / 2) + l] >> ((j & 1) ? 4 : 0)) & 0xF;
      return MulSub(d1, static_cast<float>(q), m1);
    }
    case TensorType::kQ6_K: {
      const uint8_t* b = row + (i / 256) * 210;
      const int e = static_cast<int>(i % 256), j = e / 32, l = e % 32;
      const int half = j / 4, quarter = j % 4;
      const int lq = (b[64 * half + 32 * (quarter & 1) + l] >> (quarter >= 2 ? 4 : 0)) & 0xF;
      const int hq = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
      const int8_t sc = reinterpret_cast<const int8_t*>(b + 192)[8 * half + 2 * quarter + l / 16];
      return HalfBits(LoadU16(b + 208)) * sc * static_cast<float>((lq | (hq << 4)) - 32);
    }
    default: return 0.0f;
  }
}

}  // namespace lms::gpu
