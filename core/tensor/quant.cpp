#include "core/tensor/quant.h"

#include <algorithm>
#include <cassert>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "core/tensor/fp16.h"
#include "core/tensor/quant_blocks.h"

namespace lms {
namespace {

using namespace quant;

// ---- dequantization (ggml reference formulas) -----------------------------------------------

void DequantQ8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[i * kQK + j] = x[i].qs[j] * d;
  }
}

void DequantQ4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = static_cast<float>((x[i].qs[j] & 0x0F) - 8) * d;
      y[i * kQK + j + kQK / 2] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void DequantQ4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float m = Fp16ToFp32(x[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = static_cast<float>(x[i].qs[j] & 0x0F) * d + m;
      y[i * kQK + j + kQK / 2] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
    }
  }
}

void DequantQ4_K(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const float dmin = Fp16ToFp32(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc, mn;
      Q4KScaleMin(2 * c, x[i].scales, &sc, &mn);
      const float d1 = d * sc, m1 = dmin * mn;
      Q4KScaleMin(2 * c + 1, x[i].scales, &sc, &mn);
      const float d2 = d * sc, m2 = dmin * mn;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void DequantQ6_K(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = Fp16ToFp32(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int half = 0; half < 2; ++half) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * static_cast<float>(q1);
        y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
        y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
        y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// ---- quantization ---------------------------------------------------------------------------

// Float -> int with the value first clamped to [lo, hi]; NaN becomes lo. (A plain cast of an
// out-of-range float is undefined behaviour; ggml's C casts directly.)
inline int ClampToInt(float v, float lo, float hi, bool truncate) {
  if (!(v >= lo)) v = lo;
  if (v > hi) v = hi;
  return truncate ? static_cast<int>(v) : static_cast<int>(std::nearbyint(v));
}
inline int RoundAwayClamp(float v, float lo, float hi) {  // C roundf semantics
  if (!(v >= lo)) v = lo;
  if (v > hi) v = hi;
  return static_cast<int>(std::round(v));
}

void QuantQ8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(RoundAwayClamp(x[j] * id, -128.f, 127.f));
  }
}

void QuantQ4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;  // max: the value of largest magnitude, with its sign
    for (int j = 0; j < kQK; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, ClampToInt(x[j] * id + 8.5f, 0.f, 127.f, true));
      const int q1 = std::min(15, ClampToInt(x[j + kQK / 2] * id + 8.5f, 0.f, 127.f, true));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantQ4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < kQK; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    y[i].m = Fp32ToFp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, ClampToInt((x[j] - min) * id + 0.5f, 0.f, 127.f, true));
      const int q1 = std::min(15, ClampToInt((x[j + kQK / 2] - min) * id + 0.5f, 0.f, 127.f, true));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// Q4_K without ggml's iterative scale search: each sub-block maps [min(0, lo), hi] onto 0..15,
// then the scales and mins are themselves quantized to 6 bits against the block's d / dmin.
void QuantQ4_K(const float* x, BlockQ4_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scale[8], mins[8];  // mins[s] >= 0: the sub-block's offset is -mins[s]
    float max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; ++s) {
      float lo = 0.0f, hi = -FLT_MAX;
      for (int l = 0; l < 32; ++l) {
        lo = std::min(lo, x[32 * s + l]);
        hi = std::max(hi, x[32 * s + l]);
      }
      scale[s] = hi > lo ? (hi - lo) / 15.0f : 0.0f;
      mins[s] = -lo;
      max_scale = std::max(max_scale, scale[s]);
      max_min = std::max(max_min, mins[s]);
    }
    y[i].d = Fp32ToFp16(max_scale / 63.0f);
    y[i].dmin = Fp32ToFp16(max_min / 63.0f);
    const float d = Fp16ToFp32(y[i].d), dmin = Fp16ToFp32(y[i].dmin);
    uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; ++s) {
      // Round the scale up so the top of the range is not clipped; the min to nearest.
      sc[s] = static_cast<uint8_t>(d > 0.0f ? ClampToInt(std::ceil(scale[s] / d), 0.f, 63.f, false) : 0);
      mn[s] = static_cast<uint8_t>(dmin > 0.0f ? ClampToInt(mins[s] / dmin, 0.f, 63.f, false) : 0);
    }
    PackQ4KScales(sc, mn, y[i].scales);
    for (int c = 0; c < 4; ++c) {
      for (int half = 0; half < 2; ++half) {
        const int s = 2 * c + half;
        const float ds = d * sc[s], ms = dmin * mn[s];
        const float inv = ds > 0.0f ? 1.0f / ds : 0.0f;
        for (int l = 0; l < 32; ++l) {
          const int q = ClampToInt((x[32 * s + l] + ms) * inv, 0.f, 15.f, false);
          uint8_t& byte = y[i].qs[32 * c + l];
          byte = half == 0 ? static_cast<uint8_t>(q) : static_cast<uint8_t>(byte | (q << 4));
        }
      }
    }
  }
}

// Q6_K without the iterative search: each group of 16 maps its largest-magnitude value to -32
// (as ggml does), the 16 group scales are quantized to int8 against the block's d.
void QuantQ6_K(const float* x, BlockQ6_K* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float scale[16];
    float max_scale = 0.0f, amax_scale = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float amax = 0.0f, max = 0.0f;
      for (int l = 0; l < 16; ++l) {
        const float v = x[16 * g + l];
        if (std::fabs(v) > amax) {
          amax = std::fabs(v);
          max = v;
        }
      }
      scale[g] = max / -32.0f;
      if (std::fabs(scale[g]) > amax_scale) {
        amax_scale = std::fabs(scale[g]);
        max_scale = scale[g];
      }
    }
    std::memset(y[i].ql, 0, sizeof y[i].ql);
    std::memset(y[i].qh, 0, sizeof y[i].qh);
    if (amax_scale == 0.0f) {
      std::memset(y[i].scales, 0, sizeof y[i].scales);
      y[i].d = 0;  // every value decodes to 0
      continue;
    }
    const float iscale = -128.0f / max_scale;
    y[i].d = Fp32ToFp16(1.0f / iscale);
    const float d = Fp16ToFp32(y[i].d);
    for (int g = 0; g < 16; ++g) {
      y[i].scales[g] = static_cast<int8_t>(ClampToInt(iscale * scale[g], -128.f, 127.f, false));
    }
    for (int e = 0; e < kQKK; ++e) {
      const float ds = d * y[i].scales[e / 16];
      const int q = (ds != 0.0f ? ClampToInt(x[e] / ds, -32.f, 31.f, false) : 0) + 32;
      const int half = e / 128, p = e % 128, quarter = p / 32, l = p % 32;
      uint8_t& lo = y[i].ql[64 * half + l + ((quarter & 1) ? 32 : 0)];
      lo = static_cast<uint8_t>(lo | ((quarter < 2 ? (q & 0xF) : ((q & 0xF) << 4))));
      y[i].qh[32 * half + l] = static_cast<uint8_t>(y[i].qh[32 * half + l] | ((q >> 4) << (2 * quarter)));
    }
  }
}

}  // namespace

bool CanDequantize(TensorType t) {
  switch (t) {
    case TensorType::kF32:
    case TensorType::kF16:
    case TensorType::kBF16:
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
    case TensorType::kQ4_1:
    case TensorType::kQ4_K:
    case TensorType::kQ6_K:
      return true;
    default:
      return false;
  }
}

bool CanQuantize(TensorType t) { return CanDequantize(t); }

void DequantizeRow(TensorType t, const void* src, float* dst, int64_t n) {
  assert(CanDequantize(t));
  assert(n % TypeInfo(t).block_elems == 0);
  const int64_t nb = n / TypeInfo(t).block_elems;
  switch (t) {
    case TensorType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case TensorType::kF16: Fp16RowToFp32(static_cast<const uint16_t*>(src), dst, n); break;
    case TensorType::kBF16: Bf16RowToFp32(static_cast<const uint16_t*>(src), dst, n); break;
    case TensorType::kQ8_0: DequantQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb); break;
    case TensorType::kQ4_0: DequantQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb); break;
    case TensorType::kQ4_1: DequantQ4_1(static_cast<const BlockQ4_1*>(src), dst, nb); break;
    case TensorType::kQ4_K: DequantQ4_K(static_cast<const BlockQ4_K*>(src), dst, nb); break;
    case TensorType::kQ6_K: DequantQ6_K(static_cast<const BlockQ6_K*>(src), dst, nb); break;
    default: assert(false && "DequantizeRow: unsupported type"); break;
  }
}

Status QuantizeRow(TensorType t, const float* src, void* dst, int64_t n) {
  if (!CanQuantize(t)) {
    return Status::Unsupported("cannot quantize to tensor type " + std::string(TensorTypeName(t)));
  }
  const int64_t be = TypeInfo(t).block_elems;
  if (n < 0 || n % be != 0) {
    return Status::InvalidArgument("row of " + std::to_string(n) + " elements is not a multiple of " +
                                   std::string(TensorTypeName(t)) + "'s block size " + std::to_string(be));
  }
  const int64_t nb = n / be;
  switch (t) {
    case TensorType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case TensorType::kF16: Fp32RowToFp16(src, static_cast<uint16_t*>(dst), n); break;
    case TensorType::kBF16: Fp32RowToBf16(src, static_cast<uint16_t*>(dst), n); break;
    case TensorType::kQ8_0: QuantQ8_0(src, static_cast<BlockQ8_0*>(dst), nb); break;
    case TensorType::kQ4_0: QuantQ4_0(src, static_cast<BlockQ4_0*>(dst), nb); break;
    case TensorType::kQ4_1: QuantQ4_1(src, static_cast<BlockQ4_1*>(dst), nb); break;
    case TensorType::kQ4_K: QuantQ4_K(src, static_cast<BlockQ4_K*>(dst), nb); break;
    case TensorType::kQ6_K: QuantQ6_K(src, static_cast<BlockQ6_K*>(dst), nb); break;
    default: return Status::Internal("QuantizeRow: missing case");
  }
  return Status::Ok();
}

}  // namespace lms
