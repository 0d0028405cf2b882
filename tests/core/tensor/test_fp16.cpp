#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "core/tensor/fp16.h"

using namespace lms;

TEST_CASE("Fp16ToFp32 decodes hand-picked halves", "[kernels][fp16]") {
  CHECK(Fp16ToFp32(0x0000) == 0.0f);
  CHECK(std::signbit(Fp16ToFp32(0x8000)));
  CHECK(Fp16ToFp32(0x3C00) == 1.0f);
  CHECK(Fp16ToFp32(0xC000) == -2.0f);
  CHECK(Fp16ToFp32(0x3800) == 0.5f);
  CHECK(Fp16ToFp32(0x3555) == 0.333251953125f);
  CHECK(Fp16ToFp32(0x7BFF) == 65504.0f);
  CHECK(Fp16ToFp32(0x0400) == std::ldexp(1.0f, -14));   // smallest normal
  CHECK(Fp16ToFp32(0x0001) == std::ldexp(1.0f, -24));   // smallest subnormal
  CHECK(Fp16ToFp32(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(std::isinf(Fp16ToFp32(0x7C00)));
  CHECK(Fp16ToFp32(0xFC00) < 0);
  CHECK(std::isnan(Fp16ToFp32(0x7E00)));
  CHECK(std::isnan(Fp16ToFp32(0x7C01)));
}

TEST_CASE("Fp32ToFp16 rounds to nearest even", "[kernels][fp16]") {
  CHECK(Fp32ToFp16(1.0f) == 0x3C00);
  CHECK(Fp32ToFp16(-2.0f) == 0xC000);
  CHECK(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);      // tie -> even (down)
  CHECK(Fp32ToFp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // tie -> even (up)
  CHECK(Fp32ToFp16(1.0f + std::ldexp(1.1f, -11)) == 0x3C01);      // above tie -> up
  CHECK(Fp32ToFp16(65504.0f) == 0x7BFF);
  CHECK(Fp32ToFp16(65519.0f) == 0x7BFF);
  CHECK(Fp32ToFp16(65520.0f) == 0x7C00);  // tie with 65536 -> even -> infinity
  CHECK(Fp32ToFp16(1e10f) == 0x7C00);
  CHECK(Fp32ToFp16(-1e10f) == 0xFC00);
  CHECK(Fp32ToFp16(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(Fp32ToFp16(std::ldexp(1.0f, -25)) == 0x0000);      // tie between 0 and 2^-24 -> 0
  CHECK(Fp32ToFp16(std::ldexp(3.0f, -25)) == 0x0002);      // tie between 1 and 2 -> 2
  CHECK(Fp32ToFp16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(Fp32ToFp16(std::ldexp(1023.5f, -24)) == 0x0400);   // rounds up into the normals
  CHECK(Fp32ToFp16(std::ldexp(1.0f, -30)) == 0x0000);
  CHECK(Fp32ToFp16(-0.0f) == 0x8000);
  const uint16_t nan = Fp32ToFp16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
}

TEST_CASE("Fp16 round trip is exact for every half and nearest for random floats", "[kernels][fp16]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      REQUIRE(std::isnan(Fp16ToFp32(Fp32ToFp16(f))));
    } else {
      REQUIRE(Fp32ToFp16(f) == h);
    }
  }
  // Random floats in the finite half range: the chosen half is at least as close as both
  // neighbours, and on a tie it is the even one.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-26, 15);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::ldexp(mant(rng), expo(rng));
    const uint16_t h = Fp32ToFp16(f);
    const double err = std::fabs(static_cast<double>(Fp16ToFp32(h)) - f);
    for (int delta : {-1, 1}) {
      const uint16_t nb = static_cast<uint16_t>(h + delta);
      if ((nb & 0x7C00) == 0x7C00 || ((h & 0x7FFF) == 0 && delta < 0)) continue;
      const double err_nb = std::fabs(static_cast<double>(Fp16ToFp32(nb)) - f);
      REQUIRE(err <= err_nb);
      if (err == err_nb) REQUIRE((h & 1) == 0);
    }
  }
}

TEST_CASE("BF16 conversions", "[kernels][fp16]") {
  CHECK(Bf16ToFp32(0x3F80) == 1.0f);
  CHECK(Bf16ToFp32(0xC040) == -3.0f);
  CHECK(Fp32ToBf16(1.0f) == 0x3F80);
  CHECK(Fp32ToBf16(BitsToFloat(0x3F808000u)) == 0x3F80);  // tie -> even (down)
  CHECK(Fp32ToBf16(BitsToFloat(0x3F818000u)) == 0x3F82);  // tie -> even (up)
  CHECK(Fp32ToBf16(BitsToFloat(0x3F808001u)) == 0x3F81);
  CHECK(Fp32ToBf16(BitsToFloat(0x7F7FFFFFu)) == 0x7F80);  // FLT_MAX rounds to infinity
  CHECK(std::isnan(Bf16ToFp32(Fp32ToBf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(Bf16ToFp32(Fp32ToBf16(BitsToFloat(0x7F800001u)))));  // signalling NaN stays NaN
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = Bf16ToFp32(static_cast<uint16_t>(b));
    if (!std::isnan(f)) REQUIRE(Fp32ToBf16(f) == b);
  }
}
