// The value helpers of the GPU tests (gpu_test_support.h): NMSE, random data, quantized rows.
// Kept apart from the backend pair so that the CUDA training tests also build on the host
// emulation (tests/gpu_host).
#include <catch2/catch.hpp>

#include <random>

#include "core/tensor/quant.h"
#include "tests/gpu/gpu_test_support.h"

namespace lms::test {

double Nmse(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(a[i]) * a[i];
  }
  return den > 0 ? num / den : num;
}

std::vector<float> RandomFloats(size_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> Encode(TensorType type, const std::vector<float>& values, int64_t rows, int64_t cols) {
  const size_t rb = RowBytes(type, cols);
  std::vector<uint8_t> out(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    REQUIRE(QuantizeRow(type, values.data() + r * cols, out.data() + r * rb, cols).ok());
  }
  return out;
}

}  // namespace lms::test
