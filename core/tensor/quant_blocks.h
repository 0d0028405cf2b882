// ggml's quantized block layouts, byte for byte (little-endian; fp16 fields are IEEE half bits).
// Sizes are checked against the table in types.cpp by static_assert and by the tests.
#pragma once

#include <cstdint>

namespace lms::quant {

inline constexpr int kQK = 32;    // elements per Q4_0 / Q4_1 / Q8_0 block
inline constexpr int kQKK = 256;  // elements per K-quant super-block
inline constexpr int kKScaleBytes = 12;

// Q8_0: x[j] = qs[j] * d.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// Q4_0: x[j] = (q[j] - 8) * d; q[j] is the low nibble of qs[j] for j < 16, the high nibble of
// qs[j - 16] for j >= 16.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// Q4_1: x[j] = q[j] * d + m, nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// Q4_K: 8 sub-blocks of 32; sub-block s has a 6-bit scale sc[s] and 6-bit min mn[s] packed in
// `scales` (see UnpackQ4KScales). x = d*sc[s]*q - dmin*mn[s]. Nibbles: 64-element chunk c uses
// qs[32c .. 32c+31]; low nibbles are sub-block 2c, high nibbles sub-block 2c+1.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};
// Q6_K: 6-bit values q in [0, 63], x = d * scales[g] * (q - 32) with 16 groups of 16. Low 4 bits
// in ql, high 2 bits in qh; see the dequantizer for the exact interleave.
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ6_K) == 210);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K block (ggml's get_scale_min_k4).
inline void Q4KScaleMin(int j, const uint8_t* q, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *mn = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}
inline void UnpackQ4KScales(const uint8_t* q, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 8; ++j) Q4KScaleMin(j, q, &sc[j], &mn[j]);
}
// Inverse of UnpackQ4KScales. REQUIRES: every value < 64.
inline void PackQ4KScales(const uint8_t sc[8], const uint8_t mn[8], uint8_t* q) {
  for (int j = 0; j < 4; ++j) {
    q[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = static_cast<uint8_t>((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
    q[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
}

}  // namespace lms::quant
