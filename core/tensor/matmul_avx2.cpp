// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; called only after the run-time
// check in matmul.cpp).
//
// Design (see matmul.h for the contract):
// This file: activation preparation and the kernel table. The kernels live in
// matmul_q8_avx2.cpp (Q8_0/Q4_0/Q4_1), matmul_kquant_avx2.cpp (Q4_K/Q6_K) and
// matmul_float_avx2.cpp (F32/F16/BF16); each file explains its design.
#include <immintrin.h>

#include <cassert>
#include <cstring>

#include "core/tensor/fp16.h"
#include "core/tensor/matmul_avx2_common.h"
#include "core/tensor/matmul_internal.h"
#include "core/tensor/quant_blocks.h"

namespace lms::kern {
namespace {

using namespace quant;
using namespace avx2;

// ---- activation preparation (bit-identical to PrepareRowScalar) -----------------------------

// Quantizes 32 floats to int8 with scale id; returns the 32 bytes in order, and sum(q) in *sum.
inline __m256i Quantize32(const float* x, __m256 id, int* sum) {
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), id);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);  // max first: NaN -> -127, as the scalar rule
    q[i] = _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  *sum = HsumI32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // packs interleave 128-bit lanes: bytes come out as dwords [0 2 4 6 1 3 5 7] of the wanted order.
  const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
  const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i b = _mm256_packs_epi16(p01, p23);
  return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float AbsMax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  return Hmax(m);
}

void PrepareRowQ8(const float* x, const ActLayout& L, uint8_t* out) {
  auto* q = reinterpret_cast<int8_t*>(out + L.qs);
  auto* d = reinterpret_cast<float*>(out + L.d);
  auto* s = reinterpret_cast<float*>(out + L.s);
  auto* qsum = reinterpret_cast<int32_t*>(out + L.qsum);
  for (int64_t b = 0; b < L.blocks; ++b) {
    // The rounding rule of matmul_scalar.cpp: fp16-precision d and s, as ggml's Q8_0/Q8_1.
    const float amax = AbsMax(x + b * kQK, kQK);
    const float db = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQK), Quantize32(x + b * kQK, _mm256_set1_ps(id), &sum));
    d[b] = RoundToFp16(db);
    s[b] = RoundToFp16(db * static_cast<float>(sum));
    qsum[b] = sum;
  }
  for (int64_t b = L.blocks; b < L.blocks_pad; ++b) {
    d[b] = s[b] = 0.0f;
    qsum[b] = 0;
  }
}

void PrepareRowQ8K(const float* x, const ActLayout& L, uint8_t* out) {
  auto* q = reinterpret_cast<int8_t*>(out + L.qs);
  auto* d = reinterpret_cast<float*>(out + L.d);
  auto* bsums = reinterpret_cast<int16_t*>(out + L.bsums);
  for (int64_t b = 0; b < L.blocks; ++b) {
    const float* xb = x + b * kQKK;
    const float db = AbsMax(xb, kQKK) / 127.0f;
    const __m256 id = _mm256_set1_ps(db != 0.0f ? 1.0f / db : 0.0f);
    for (int j = 0; j < kQKK / 32; ++j) {
      int sum = 0;
      const __m256i v = Quantize32(xb + 32 * j, id, &sum);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * kQKK + 32 * j), v);
      // Sums per 16: widen each 16-byte half to int16 and add horizontally.
      for (int h = 0; h < 2; ++h) {
        const __m128i half = h == 0 ? _mm256_castsi256_si128(v) : _mm256_extracti128_si256(v, 1);
        const __m256i w16 = _mm256_cvtepi8_epi16(half);
        bsums[b * 16 + 2 * j + h] = static_cast<int16_t>(HsumI32(_mm256_madd_epi16(w16, _mm256_set1_epi16(1))));
      }
    }
    d[b] = db;
  }
  for (int64_t b = L.blocks; b < L.blocks_pad; ++b) d[b] = 0.0f;
}

void PrepareAvx2(const float* x, int64_t ldx, int64_t r0, int64_t r1, const ActLayout& L, uint8_t* act) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* out = act + static_cast<size_t>(r) * L.stride;
    switch (L.format) {
      case ActFormat::kF32: std::memcpy(out, xr, static_cast<size_t>(L.k) * sizeof(float)); break;
      case ActFormat::kQ8: PrepareRowQ8(xr, L, out); break;
      case ActFormat::kQ8K: PrepareRowQ8K(xr, L, out); break;
    }
  }
}

}  // namespace

TypeKernels Avx2Kernels(TensorType wt) {
  TypeKernels t;
  t.prepare = &PrepareAvx2;
  switch (wt) {
    case TensorType::kF32: t.matmul = &MatMulF32Avx2; break;
    case TensorType::kF16: t.matmul = &MatMulF16Avx2; break;
    case TensorType::kBF16: t.matmul = &MatMulBF16Avx2; break;
    case TensorType::kQ8_0: t.matmul = &MatMulQ8_0Avx2; break;
    case TensorType::kQ4_0: t.matmul = &MatMulQ4_0Avx2; break;
    case TensorType::kQ4_1: t.matmul = &MatMulQ4_1Avx2; break;
    case TensorType::kQ4_K: t.matmul = &MatMulQ4_KAvx2; break;
    case TensorType::kQ6_K: t.matmul = &MatMulQ6_KAvx2; break;
    default: t.prepare = nullptr; break;
  }
  return t;
}

}  // namespace lms::kern
