#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/tensor/fp16.h"
#include "core/tensor/quant.h"
#include "core/tensor/quant_blocks.h"

using namespace lms;
using namespace lms::quant;

namespace {

std::vector<float> Dequant(TensorType t, const void* src, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  DequantizeRow(t, src, out.data(), n);
  return out;
}

}  // namespace

TEST_CASE("Block layouts match the type table", "[kernels][quant]") {
  CHECK(TypeInfo(TensorType::kQ8_0).block_bytes == sizeof(BlockQ8_0));
  CHECK(TypeInfo(TensorType::kQ4_0).block_bytes == sizeof(BlockQ4_0));
  CHECK(TypeInfo(TensorType::kQ4_1).block_bytes == sizeof(BlockQ4_1));
  CHECK(TypeInfo(TensorType::kQ4_K).block_bytes == sizeof(BlockQ4_K));
  CHECK(TypeInfo(TensorType::kQ6_K).block_bytes == sizeof(BlockQ6_K));
}

TEST_CASE("Dequantize hand-made Q8_0, Q4_0, Q4_1 blocks", "[kernels][quant]") {
  SECTION("Q8_0: value = q * d") {
    uint8_t blk[34];
    blk[0] = 0x00, blk[1] = 0x38;  // d = 0.5 (fp16 0x3800), little-endian
    for (int j = 0; j < 32; ++j) blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 16));
    blk[2 + 31] = 0x80;  // -128 is a legal stored value
    const auto y = Dequant(TensorType::kQ8_0, blk, 32);
    CHECK(y[0] == -8.0f);
    CHECK(y[16] == 0.0f);
    CHECK(y[17] == 0.5f);
    CHECK(y[30] == 7.0f);
    CHECK(y[31] == -64.0f);
  }
  SECTION("Q4_0: value = (q - 8) * d, low nibbles first") {
    uint8_t blk[18];
    blk[0] = 0x00, blk[1] = 0x40;  // d = 2
    for (int j = 0; j < 16; ++j) blk[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    const auto y = Dequant(TensorType::kQ4_0, blk, 32);
    CHECK(y[0] == -16.0f);   // q=0
    CHECK(y[8] == 0.0f);     // q=8
    CHECK(y[15] == 14.0f);   // q=15
    CHECK(y[16] == 14.0f);   // high nibble of byte 0: q=15
    CHECK(y[31] == -16.0f);  // high nibble of byte 15: q=0
    CHECK(y[20] == 6.0f);    // high nibble of byte 4: q=11
  }
  SECTION("Q4_1: value = q * d + m") {
    uint8_t blk[20];
    blk[0] = 0x00, blk[1] = 0x3C;  // d = 1
    blk[2] = 0x00, blk[3] = 0xBE;  // m = -1.5
    for (int j = 0; j < 16; ++j) blk[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    const auto y = Dequant(TensorType::kQ4_1, blk, 32);
    CHECK(y[0] == -1.5f);
    CHECK(y[3] == 1.5f);
    CHECK(y[15] == 13.5f);
    CHECK(y[16] == 13.5f);
    CHECK(y[31] == -1.5f);
  }
}

TEST_CASE("Dequantize a hand-made Q4_K block", "[kernels][quant]") {
  BlockQ4_K b{};
  b.d = 0x3C00;     // 1.0
  b.dmin = 0x3800;  // 0.5
  const uint8_t scales[12] = {0x41, 0x02, 0x83, 0xC4, 0x05, 0x06, 0x07, 0x48, 0x21, 0x32, 0x13, 0xF4};
  std::memcpy(b.scales, scales, 12);
  // Worked out by hand from the 6-bit packing (see quant_blocks.h):
  const uint8_t want_sc[8] = {1, 2, 3, 4, 17, 2, 35, 52};
  const uint8_t want_mn[8] = {5, 6, 7, 8, 2, 3, 1, 31};
  uint8_t sc[8], mn[8];
  UnpackQ4KScales(b.scales, sc, mn);
  for (int j = 0; j < 8; ++j) {
    CHECK(sc[j] == want_sc[j]);
    CHECK(mn[j] == want_mn[j]);
  }
  uint8_t repacked[12];
  PackQ4KScales(sc, mn, repacked);
  CHECK(std::memcmp(repacked, scales, 12) == 0);

  for (int l = 0; l < 128; ++l) b.qs[l] = static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4));
  const auto y = Dequant(TensorType::kQ4_K, &b, 256);
  CHECK(y[0] == -2.5f);     // sub-block 0: 1*1*0 - 0.5*5
  CHECK(y[1] == -1.5f);     // 1*1*1 - 2.5
  CHECK(y[32] == 27.0f);    // sub-block 1 (high nibbles of chunk 0): 1*2*15 - 0.5*6
  CHECK(y[224] == 764.5f);  // sub-block 7, q = 15: 52*15 - 15.5
  CHECK(y[255] == -15.5f);  // sub-block 7, q = 0
  CHECK(y[128] == -1.0f);   // sub-block 4, q = 0: -0.5*2
  CHECK(y[129] == 16.0f);   // 17*1 - 1
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, l = e % 32;
    const int q = (s % 2 == 0) ? (l % 16) : (15 - l % 16);
    REQUIRE(y[e] == static_cast<float>(want_sc[s] * q) - 0.5f * want_mn[s]);
  }
}

TEST_CASE("Dequantize a hand-made Q6_K block", "[kernels][quant]") {
  BlockQ6_K b{};
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>(i);
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>(i * 7);
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  b.d = 0x3400;  // 0.25
  const auto y = Dequant(TensorType::kQ6_K, &b, 256);
  CHECK(y[0] == 64.0f);     // q = 0 - 32, scale -8: 0.25 * -8 * -32
  CHECK(y[32] == 48.0f);    // ql[32] low nibble 0, qh[0] bits 2-3 = 0, scale[2] = -6
  CHECK(y[95] == 11.25f);   // ql[31] high nibble 1, qh[31] = 0xD9 bits 4-5 = 1: q = 17 - 32; scale -3
  CHECK(y[255] == 12.25f);  // ql[127] high nibble 7, qh[63] = 0xB9 bits 6-7 = 2: q = 39 - 32; scale 7
  CHECK(y[16] == 56.0f);    // ql[16] = 0x10: low nibble 0; qh[16] = 0x70: bits 0-1 = 0; scale[1] = -7
}

TEST_CASE("Reference quantizers reproduce ggml's rounding", "[kernels][quant]") {
  SECTION("Q8_0 rounds half away from zero") {
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
    x[0] = -127.0f;  // amax 127 -> d = 1 exactly
    x[1] = 2.5f;
    x[2] = -2.5f;
    x[3] = 0.49f;
    BlockQ8_0 b;
    REQUIRE(QuantizeRow(TensorType::kQ8_0, x, &b, 32).ok());
    CHECK(b.d == 0x3C00);
    CHECK(b.qs[0] == -127);
    CHECK(b.qs[1] == 3);
    CHECK(b.qs[2] == -3);
    CHECK(b.qs[3] == 0);
    CHECK(b.qs[20] == 4);
  }
  SECTION("Q4_0 maps the signed extreme to -8") {
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16) - 8.0f;  // max magnitude: -8
    x[5] = 0.5f;   // 0.5 + 8.5 = 9.0 -> 9
    x[6] = 0.4f;   // 8.9 -> 8 (truncation)
    x[7] = 7.9f;   // 16.4 -> clamped to 15
    BlockQ4_0 b;
    REQUIRE(QuantizeRow(TensorType::kQ4_0, x, &b, 32).ok());
    CHECK(b.d == 0x3C00);  // -8 / -8
    CHECK(b.qs[0] == (0 | (0 << 4)));
    CHECK(b.qs[1] == (1 | (1 << 4)));
    CHECK((b.qs[5] & 0xF) == 9);
    CHECK((b.qs[6] & 0xF) == 8);
    CHECK((b.qs[7] & 0xF) == 15);
    CHECK(b.qs[15] == (15 | (15 << 4)));
  }
  SECTION("Q4_1 maps [min, max] onto 0..15") {
    float x[32];
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16) - 1.0f;  // min -1, max 14
    x[4] = 2.4f;  // (2.4 + 1) + 0.5 = 3.9 -> 3
    x[5] = 2.6f;  // 4.1 -> 4
    BlockQ4_1 b;
    REQUIRE(QuantizeRow(TensorType::kQ4_1, x, &b, 32).ok());
    CHECK(b.d == 0x3C00);
    CHECK(b.m == 0xBC00);
    CHECK(b.qs[0] == 0x00);
    CHECK(b.qs[15] == 0xFF);
    CHECK((b.qs[4] & 0xF) == 3);
    CHECK((b.qs[5] & 0xF) == 4);
    CHECK((b.qs[4] >> 4) == 4);
  }
}

TEST_CASE("QuantizeRow rejects what it cannot do", "[kernels][quant]") {
  std::vector<float> x(64, 1.0f);
  std::vector<uint8_t> out(1024);
  CHECK(QuantizeRow(TensorType::kQ5_0, x.data(), out.data(), 64).code() == StatusCode::kUnsupported);
  CHECK(QuantizeRow(TensorType::kQ8_0, x.data(), out.data(), 48).code() == StatusCode::kInvalidArgument);
  CHECK(QuantizeRow(TensorType::kQ4_K, x.data(), out.data(), 64).code() == StatusCode::kInvalidArgument);
  CHECK_FALSE(CanQuantize(TensorType::kQ2_K));
  CHECK(CanQuantize(TensorType::kQ6_K));
}

TEST_CASE("Quantize then dequantize stays within the format's error bound", "[kernels][quant]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  const int64_t n = 1024;
  std::vector<float> x(n);
  for (auto& v : x) v = gauss(rng) * 0.05f;
  x[100] = 0.9f;  // an outlier, as real weights have
  x[300] = 0.0f;
  for (int i = 512; i < 544; ++i) x[i] = 0.0f;  // an all-zero block

  struct Case {
    TensorType t;
    double rms_bound;  // RMS error / RMS of the data
  };
  for (Case c : {Case{TensorType::kF32, 0.0}, Case{TensorType::kF16, 1e-3}, Case{TensorType::kBF16, 5e-3},
                 Case{TensorType::kQ8_0, 0.01}, Case{TensorType::kQ4_0, 0.15}, Case{TensorType::kQ4_1, 0.12},
                 Case{TensorType::kQ4_K, 0.12}, Case{TensorType::kQ6_K, 0.04}}) {
    INFO("type " << TensorTypeName(c.t));
    std::vector<uint8_t> q(RowBytes(c.t, n));
    REQUIRE(QuantizeRow(c.t, x.data(), q.data(), n).ok());
    const auto y = Dequant(c.t, q.data(), n);
    double err2 = 0, ref2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      err2 += (y[i] - x[i]) * static_cast<double>(y[i] - x[i]);
      ref2 += x[i] * static_cast<double>(x[i]);
    }
    CHECK(std::sqrt(err2 / ref2) <= c.rms_bound);
    for (int i = 512; i < 544; ++i) REQUIRE(y[i] == 0.0f);
  }

  // Per-element bounds for the 32-blocks: half a quantization step (+ fp16 rounding of d, m).
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x.data() + b * 32;
    float amax = 0, lo = xb[0], hi = xb[0];
    for (int j = 0; j < 32; ++j) {
      amax = std::max(amax, std::fabs(xb[j]));
      lo = std::min(lo, xb[j]);
      hi = std::max(hi, xb[j]);
    }
    BlockQ8_0 q8;
    BlockQ4_0 q40;
    BlockQ4_1 q41;
    REQUIRE(QuantizeRow(TensorType::kQ8_0, xb, &q8, 32).ok());
    REQUIRE(QuantizeRow(TensorType::kQ4_0, xb, &q40, 32).ok());
    REQUIRE(QuantizeRow(TensorType::kQ4_1, xb, &q41, 32).ok());
    const auto y8 = Dequant(TensorType::kQ8_0, &q8, 32);
    const auto y40 = Dequant(TensorType::kQ4_0, &q40, 32);
    const auto y41 = Dequant(TensorType::kQ4_1, &q41, 32);
    for (int j = 0; j < 32; ++j) {
      REQUIRE(std::fabs(y8[j] - xb[j]) <= amax / 127 * 0.5f + amax * 2e-3f + 1e-9f);
      REQUIRE(std::fabs(y40[j] - xb[j]) <= amax / 8 * 1.0f + amax * 2e-3f + 1e-9f);  // the far side clips
      REQUIRE(std::fabs(y41[j] - xb[j]) <= (hi - lo) / 15 * 0.5f + (hi - lo + std::fabs(lo)) * 2e-3f + 1e-9f);
    }
  }
}
