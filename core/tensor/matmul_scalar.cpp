// Portable scalar kernels: the reference every SIMD kernel is tested against, and the fallback
// on CPUs without AVX2. Integer block dot products are exact; float accumulation is sequential
// over blocks, so each output is independent of m and of the column range (batch-invariant).
#include <cassert>
#include <cmath>
#include <cstring>

#include "core/tensor/fp16.h"
#include "core/tensor/matmul_internal.h"
#include "core/tensor/quant_blocks.h"

namespace lms::kern {
namespace {

using namespace quant;

// Activation rounding rule (the AVX2 prepare reproduces it bit for bit), as llama.cpp's CPU
// backend quantizes activations to Q8_0/Q8_1: q = round-half-even(clamp(x * (127/amax), -127,
// 127)), NaN maps to -127; the block scale d = amax/127 and the block sum s = d * sum(q) are
// kept at fp16 precision, because ggml stores them as fp16 and greedy decoding then follows
// llama.cpp's choices at near-ties. (K-quant activations keep an f32 scale, as ggml's Q8_K.)
inline int8_t QuantizeActivation(float v, float id) {
  v *= id;
  v = v > -127.0f ? v : -127.0f;
  v = v < 127.0f ? v : 127.0f;
  return static_cast<int8_t>(std::nearbyint(v));
}

inline float BlockAbsMax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float a = std::fabs(x[j]);
    amax = a > amax ? a : amax;
  }
  return amax;
}

inline float BlockScale(const float* x, int n) { return BlockAbsMax(x, n) / 127.0f; }

// ---- dot products of one weight row with one prepared activation row ------------------------

float DotF32(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const float* wf = reinterpret_cast<const float*>(w);
  const float* af = reinterpret_cast<const float*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < L.k; ++i) sum += wf[i] * af[i];
  return sum;
}

float DotF16(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const uint16_t* wh = reinterpret_cast<const uint16_t*>(w);
  const float* af = reinterpret_cast<const float*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < L.k; ++i) sum += Fp16ToFp32(wh[i]) * af[i];
  return sum;
}

float DotBF16(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const uint16_t* wh = reinterpret_cast<const uint16_t*>(w);
  const float* af = reinterpret_cast<const float*>(a);
  float sum = 0.0f;
  for (int64_t i = 0; i < L.k; ++i) sum += Bf16ToFp32(wh[i]) * af[i];
  return sum;
}

struct Q8Act {
  const int8_t* q;
  const float* d;
  const float* s;
  explicit Q8Act(const uint8_t* a, const ActLayout& L)
      : q(reinterpret_cast<const int8_t*>(a + L.qs)),
        d(reinterpret_cast<const float*>(a + L.d)),
        s(reinterpret_cast<const float*>(a + L.s)) {}
};

// One step of the canonical block accumulation (matmul_internal.h). std::fma, not a*b+c: the
// SIMD kernels use FMA instructions and the results must match bit for bit.
inline float AccumulateBlock(float y, int isum, float da, float dw) {
  const float t = static_cast<float>(isum) * da;
  return std::fma(t, dw, y);
}

float DotQ8_0(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const auto* x = reinterpret_cast<const BlockQ8_0*>(w);
  const Q8Act act(a, L);
  float sum = 0.0f;
  for (int64_t b = 0; b < L.blocks; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += x[b].qs[j] * act.q[b * kQK + j];
    sum = AccumulateBlock(sum, isum, act.d[b], Fp16ToFp32(x[b].d));
  }
  return sum;
}

float DotQ4_0(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const auto* x = reinterpret_cast<const BlockQ4_0*>(w);
  const Q8Act act(a, L);
  float sum = 0.0f;
  for (int64_t b = 0; b < L.blocks; ++b) {
    const int8_t* q = act.q + b * kQK;
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += ((x[b].qs[j] & 0xF) - 8) * q[j] + ((x[b].qs[j] >> 4) - 8) * q[j + kQK / 2];
    }
    sum = AccumulateBlock(sum, isum, act.d[b], Fp16ToFp32(x[b].d));
  }
  return sum;
}

float DotQ4_1(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const auto* x = reinterpret_cast<const BlockQ4_1*>(w);
  const Q8Act act(a, L);
  float sum = 0.0f;
  for (int64_t b = 0; b < L.blocks; ++b) {
    const int8_t* q = act.q + b * kQK;
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j) isum += (x[b].qs[j] & 0xF) * q[j] + (x[b].qs[j] >> 4) * q[j + kQK / 2];
    sum = AccumulateBlock(sum, isum, act.d[b], Fp16ToFp32(x[b].d));
    sum = std::fma(Fp16ToFp32(x[b].m), act.s[b], sum);
  }
  return sum;
}

struct Q8KAct {
  const int8_t* q;
  const float* d;
  const int16_t* bsums;
  explicit Q8KAct(const uint8_t* a, const ActLayout& L)
      : q(reinterpret_cast<const int8_t*>(a + L.qs)),
        d(reinterpret_cast<const float*>(a + L.d)),
        bsums(reinterpret_cast<const int16_t*>(a + L.bsums)) {}
};

float DotQ4_K(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const auto* x = reinterpret_cast<const BlockQ4_K*>(w);
  const Q8KAct act(a, L);
  float sum = 0.0f;
  for (int64_t b = 0; b < L.blocks; ++b) {
    uint8_t sc[8], mn[8];
    UnpackQ4KScales(x[b].scales, sc, mn);
    const int8_t* q8 = act.q + b * kQKK;
    const int16_t* bs = act.bsums + b * 16;
    int sumi = 0, summ = 0;
    for (int s = 0; s < 8; ++s) {
      const uint8_t* q4 = x[b].qs + 32 * (s / 2);
      const int shift = (s % 2) * 4;
      int isum = 0;
      for (int l = 0; l < 32; ++l) isum += ((q4[l] >> shift) & 0xF) * q8[32 * s + l];
      sumi += sc[s] * isum;
      summ += mn[s] * (bs[2 * s] + bs[2 * s + 1]);
    }
    sum += act.d[b] * Fp16ToFp32(x[b].d) * static_cast<float>(sumi) -
           act.d[b] * Fp16ToFp32(x[b].dmin) * static_cast<float>(summ);
  }
  return sum;
}

float DotQ6_K(const uint8_t* w, const uint8_t* a, const ActLayout& L) {
  const auto* x = reinterpret_cast<const BlockQ6_K*>(w);
  const Q8KAct act(a, L);
  float sum = 0.0f;
  for (int64_t b = 0; b < L.blocks; ++b) {
    const int8_t* q8 = act.q + b * kQKK;
    int sumi = 0;
    for (int e = 0; e < kQKK; ++e) {
      const int half = e / 128, p = e % 128, quarter = p / 32, l = p % 32;
      const uint8_t lo = x[b].ql[64 * half + l + ((quarter & 1) ? 32 : 0)];
      const int q = (((quarter < 2) ? (lo & 0xF) : (lo >> 4)) | (((x[b].qh[32 * half + l] >> (2 * quarter)) & 3) << 4)) - 32;
      sumi += x[b].scales[e / 16] * q * q8[e];
    }
    sum += act.d[b] * Fp16ToFp32(x[b].d) * static_cast<float>(sumi);
  }
  return sum;
}

template <float (*Dot)(const uint8_t*, const uint8_t*, const ActLayout&)>
void MatMulScalar(const uint8_t* w, size_t w_stride, int64_t n0, int64_t n1, const uint8_t* act, const ActLayout& L,
                  int64_t m, float* y, int64_t ldy) {
  for (int64_t j = n0; j < n1; ++j) {
    const uint8_t* wr = w + static_cast<size_t>(j) * w_stride;
    for (int64_t i = 0; i < m; ++i) y[i * ldy + j] = Dot(wr, act + static_cast<size_t>(i) * L.stride, L);
  }
}

void PrepareScalar(const float* x, int64_t ldx, int64_t r0, int64_t r1, const ActLayout& L, uint8_t* act) {
  for (int64_t r = r0; r < r1; ++r) PrepareRowScalar(x + r * ldx, L, act + static_cast<size_t>(r) * L.stride);
}

}  // namespace

void PrepareRowScalar(const float* x, const ActLayout& L, uint8_t* out) {
  switch (L.format) {
    case ActFormat::kF32:
      std::memcpy(out, x, static_cast<size_t>(L.k) * sizeof(float));
      break;
    case ActFormat::kQ8: {
      auto* q = reinterpret_cast<int8_t*>(out + L.qs);
      auto* d = reinterpret_cast<float*>(out + L.d);
      auto* s = reinterpret_cast<float*>(out + L.s);
      auto* qsum = reinterpret_cast<int32_t*>(out + L.qsum);
      for (int64_t b = 0; b < L.blocks_pad; ++b) {
        if (b >= L.blocks) {
          d[b] = s[b] = 0.0f;
          qsum[b] = 0;
          continue;
        }
        const float amax = BlockAbsMax(x + b * kQK, kQK);
        const float db = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < kQK; ++j) {
          q[b * kQK + j] = QuantizeActivation(x[b * kQK + j], id);
          sum += q[b * kQK + j];
        }
        d[b] = RoundToFp16(db);
        s[b] = RoundToFp16(db * static_cast<float>(sum));
        qsum[b] = sum;
      }
      break;
    }
    case ActFormat::kQ8K: {
      auto* q = reinterpret_cast<int8_t*>(out + L.qs);
      auto* d = reinterpret_cast<float*>(out + L.d);
      auto* bsums = reinterpret_cast<int16_t*>(out + L.bsums);
      for (int64_t b = 0; b < L.blocks_pad; ++b) {
        if (b >= L.blocks) {
          d[b] = 0.0f;
          continue;
        }
        const float db = BlockScale(x + b * kQKK, kQKK);
        const float id = db != 0.0f ? 1.0f / db : 0.0f;
        for (int g = 0; g < 16; ++g) {
          int sum = 0;
          for (int l = 0; l < 16; ++l) {
            const int64_t e = b * kQKK + 16 * g + l;
            q[e] = QuantizeActivation(x[e], id);
            sum += q[e];
          }
          bsums[b * 16 + g] = static_cast<int16_t>(sum);
        }
        d[b] = db;
      }
      break;
    }
  }
}

TypeKernels ScalarKernels(TensorType wt) {
  TypeKernels t;
  t.prepare = &PrepareScalar;
  switch (wt) {
    case TensorType::kF32: t.matmul = &MatMulScalar<DotF32>; break;
    case TensorType::kF16: t.matmul = &MatMulScalar<DotF16>; break;
    case TensorType::kBF16: t.matmul = &MatMulScalar<DotBF16>; break;
    case TensorType::kQ8_0: t.matmul = &MatMulScalar<DotQ8_0>; break;
    case TensorType::kQ4_0: t.matmul = &MatMulScalar<DotQ4_0>; break;
    case TensorType::kQ4_1: t.matmul = &MatMulScalar<DotQ4_1>; break;
    case TensorType::kQ4_K: t.matmul = &MatMulScalar<DotQ4_K>; break;
    case TensorType::kQ6_K: t.matmul = &MatMulScalar<DotQ6_K>; break;
    default: t.prepare = nullptr; break;
  }
  return t;
}

}  // namespace lms::kern
