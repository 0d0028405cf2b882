#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/tensor/matmul.h"
#include "core/tensor/quant.h"
#include "tests/test_support.h"

using namespace lms;

namespace {

// Restores the detected kernel set when a test that switched it ends.
struct IsaGuard {
  ~IsaGuard() { SetKernelIsa(DetectedKernelIsa()); }
};

const TensorType kAllTypes[] = {TensorType::kQ8_0, TensorType::kQ4_1, TensorType::kQ4_0, TensorType::kQ4_K,
                                TensorType::kQ6_K, TensorType::kF16,  TensorType::kBF16, TensorType::kF32};

bool IsKQuant(TensorType t) { return t == TensorType::kQ4_K || t == TensorType::kQ6_K; }
bool IsFloat(TensorType t) { return t == TensorType::kF32 || t == TensorType::kF16 || t == TensorType::kBF16; }

// n weight rows of k elements, rows `stride` bytes apart (a little padding to exercise it),
// plus the dequantized values for the float reference.
struct Weights {
  TensorType type;
  int64_t n, k;
  size_t stride;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;
};

Weights MakeWeights(TensorType t, int64_t n, int64_t k, std::mt19937& rng) {
  Weights w{t, n, k, RowBytes(t, k) + 16, {}, {}};
  w.bytes.assign(w.stride * static_cast<size_t>(n), 0xEE);
  w.deq.resize(static_cast<size_t>(n * k));
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t j = 0; j < n; ++j) {
    for (auto& v : row) v = gauss(rng) * 0.02f + 0.004f;  // a mean offset exercises Q4_1's min
    row[static_cast<size_t>(j % k)] = 0.5f;               // an outlier per row
    uint8_t* dst = w.bytes.data() + static_cast<size_t>(j) * w.stride;
    REQUIRE(QuantizeRow(t, row.data(), dst, k).ok());
    if (t == TensorType::kQ8_0) dst[2 + (j % 32)] = 0x80;  // -128: legal in files, never made by ggml
    DequantizeRow(t, dst, w.deq.data() + j * k, k);
  }
  return w;
}

std::vector<float> MakeActivations(int64_t m, int64_t ldx, std::mt19937& rng) {
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m * ldx));
  for (auto& v : x) v = gauss(rng);
  for (int64_t i = 0; i < m; ++i) x[static_cast<size_t>(i * ldx + (i * 7) % 32)] = 9.0f;  // activation outliers
  return x;
}

std::vector<float> RunMatMul(const Weights& w, const std::vector<float>& x, int64_t m, int64_t ldx, int64_t ldy) {
  std::vector<float> y(static_cast<size_t>(m * ldy), -777.0f);
  REQUIRE(MatMul(w.type, w.bytes.data(), w.stride, w.n, x.data(), m, w.k, ldx, y.data(), ldy).ok());
  return y;
}

// |error| allowed against the exact product of the dequantized weights with unquantized x:
// activation rounding (half a step of the per-block int8 scale) plus float accumulation.
double AllowedError(const Weights& w, const float* wrow, const float* x) {
  const int64_t bs = IsFloat(w.type) ? 0 : (IsKQuant(w.type) ? 256 : 32);
  double bound = 0, mag = 0;
  for (int64_t b0 = 0; b0 < w.k; b0 += (bs ? bs : w.k)) {
    const int64_t len = bs ? bs : w.k;
    double amax = 0, wsum = 0;
    for (int64_t i = b0; i < b0 + len; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      wsum += std::fabs(wrow[i]);
      mag += std::fabs(static_cast<double>(wrow[i]) * x[i]);
    }
    if (bs) bound += wsum * amax / 127.0 * 0.51;
  }
  return bound + 2e-5 * mag + 1e-30;
}

double Magnitude(const Weights& w, const float* wrow, const float* x) {
  double mag = 0;
  for (int64_t i = 0; i < w.k; ++i) mag += std::fabs(static_cast<double>(wrow[i]) * x[i]);
  return mag;
}

std::vector<int64_t> KsFor(TensorType t) {
  if (IsKQuant(t)) return {256, 512, 1536};
  if (IsFloat(t)) return {32, 256, 576, 1536, 37};  // float weights take any k
  return {32, 256, 576, 1536};
}

}  // namespace

TEST_CASE("MatMul validates its inputs", "[kernels][matmul]") {
  CHECK(ValidateMatMul(TensorType::kQ8_0, 576).ok());
  CHECK(ValidateMatMul(TensorType::kQ8_0, 100).code() == StatusCode::kInvalidArgument);
  CHECK(ValidateMatMul(TensorType::kQ4_K, 576).code() == StatusCode::kInvalidArgument);
  CHECK(ValidateMatMul(TensorType::kQ5_0, 64).code() == StatusCode::kUnsupported);
  CHECK(ValidateMatMul(TensorType::kF32, 0).code() == StatusCode::kInvalidArgument);
  CHECK(ValidateMatMul(TensorType::kF32, 7).ok());
  for (TensorType t : kAllTypes) CHECK(CanMatMul(t));
  float x[64] = {}, y[4] = {};
  std::vector<uint8_t> w(1024);
  CHECK(MatMul(TensorType::kQ8_0, w.data(), 10, 2, x, 1, 64, 64, y, 2).code() == StatusCode::kInvalidArgument);
  CHECK(MatMul(TensorType::kQ2_K, w.data(), 84, 1, x, 1, 256, 256, y, 1).code() == StatusCode::kUnsupported);
  CHECK(ActivationBytes(TensorType::kQ8_0, 3, 576) % 64 == 0);
  CHECK(ActivationBytes(TensorType::kQ8_0, 3, 576) >= 3 * (576 + 18 * 8));
}

TEST_CASE("Scalar kernels match the float reference within the activation rounding bound", "[kernels][matmul]") {
  IsaGuard guard;
  SetKernelIsa(KernelIsa::kScalar);
  std::mt19937 rng(1);
  for (TensorType t : kAllTypes) {
    for (int64_t k : KsFor(t)) {
      const int64_t m = 3, n = 5, ldx = k + 3, ldy = n + 2;
      INFO("type " << TensorTypeName(t) << " k=" << k);
      const Weights w = MakeWeights(t, n, k, rng);
      const auto x = MakeActivations(m, ldx, rng);
      const auto y = RunMatMul(w, x, m, ldx, ldy);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const float* wr = w.deq.data() + j * k;
          const float* xr = x.data() + i * ldx;
          double ref = 0;
          for (int64_t e = 0; e < k; ++e) ref += static_cast<double>(wr[e]) * xr[e];
          REQUIRE(std::fabs(y[i * ldy + j] - ref) <= AllowedError(w, wr, xr));
        }
        REQUIRE(y[i * ldy + n] == -777.0f);  // nothing written past n
      }
    }
  }
}

TEST_CASE("SIMD kernels match the scalar reference on odd shapes", "[kernels][matmul]") {
  if (DetectedKernelIsa() == KernelIsa::kScalar) LMS_SKIP("no SIMD kernel set on this CPU");
  IsaGuard guard;
  std::mt19937 rng(2);
  for (TensorType t : kAllTypes) {
    for (int64_t k : KsFor(t)) {
      for (int64_t m : {1, 3, 17}) {
        for (int64_t n : {1, 5, 13, 37}) {
          INFO("type " << TensorTypeName(t) << " m=" << m << " n=" << n << " k=" << k);
          const int64_t ldx = k + 1, ldy = n;
          const Weights w = MakeWeights(t, n, k, rng);
          const auto x = MakeActivations(m, ldx, rng);
          SetKernelIsa(KernelIsa::kScalar);
          const auto ref = RunMatMul(w, x, m, ldx, ldy);
          std::vector<uint8_t> prep_ref(ActivationBytes(t, m, k));
          PrepareActivations(t, x.data(), m, k, ldx, prep_ref.data());
          SetKernelIsa(DetectedKernelIsa());
          const auto got = RunMatMul(w, x, m, ldx, ldy);
          std::vector<uint8_t> prep(ActivationBytes(t, m, k));
          PrepareActivations(t, x.data(), m, k, ldx, prep.data());
          REQUIRE(prep == prep_ref);  // activation quantization is bit-identical across kernel sets
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              // Same integer dot products; only the float summation order differs.
              const double tol = 2e-5 * Magnitude(w, w.deq.data() + j * k, x.data() + i * ldx) + 1e-30;
              REQUIRE(std::fabs(got[i * ldy + j] - ref[i * ldy + j]) <= tol);
              // The 32-block formats follow one canonical operation order (matmul_internal.h),
              // so there the two kernel sets agree to the bit.
              if (t == TensorType::kQ8_0 || t == TensorType::kQ4_0 || t == TensorType::kQ4_1) {
                REQUIRE(got[i * ldy + j] == ref[i * ldy + j]);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("MatMul is batch-invariant: bit-identical whatever m, tile or column split", "[kernels][matmul]") {
  IsaGuard guard;
  std::vector<KernelIsa> isas = {KernelIsa::kScalar};
  if (DetectedKernelIsa() != KernelIsa::kScalar) isas.push_back(DetectedKernelIsa());
  std::mt19937 rng(3);
  for (KernelIsa isa : isas) {
    SetKernelIsa(isa);
    for (TensorType t : kAllTypes) {
      const int64_t k = IsKQuant(t) ? 512 : 576, m = 37, n = 45, ldx = k + 5, ldy = n + 3;
      INFO("isa " << KernelIsaName(isa) << " type " << TensorTypeName(t));
      const Weights w = MakeWeights(t, n, k, rng);
      const auto x = MakeActivations(m, ldx, rng);

      // The whole batch, columns split as three threads might.
      std::vector<uint8_t> prep(ActivationBytes(t, m, k));
      PrepareActivationRows(t, x.data(), k, ldx, 0, 20, prep.data());
      PrepareActivationRows(t, x.data(), k, ldx, 20, m, prep.data());
      std::vector<float> y(static_cast<size_t>(m * ldy), 0.0f);
      for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 5}, {5, 18}, {18, n}}) {
        MatMulPrepared(t, w.bytes.data(), w.stride, b, e, prep.data(), m, k, y.data(), ldy);
      }
      // One row at a time, and a 3-row batch from the middle, must give the same bits.
      for (int64_t i = 0; i < m; ++i) {
        std::vector<float> y1(static_cast<size_t>(n));
        REQUIRE(MatMul(t, w.bytes.data(), w.stride, n, x.data() + i * ldx, 1, k, ldx, y1.data(), n).ok());
        REQUIRE(std::memcmp(y1.data(), y.data() + i * ldy, sizeof(float) * static_cast<size_t>(n)) == 0);
      }
      std::vector<float> y3(static_cast<size_t>(3 * n));
      REQUIRE(MatMul(t, w.bytes.data(), w.stride, n, x.data() + 10 * ldx, 3, k, ldx, y3.data(), n).ok());
      for (int64_t i = 0; i < 3; ++i) {
        REQUIRE(std::memcmp(y3.data() + i * n, y.data() + (10 + i) * ldy, sizeof(float) * static_cast<size_t>(n)) == 0);
      }
    }
  }
}

TEST_CASE("Prepacked weights give MatMulPrepared's results bit for bit", "[kernels][matmul]") {
  std::mt19937 rng(11);
  for (TensorType t : {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_1}) {
    if (!CanPrepackWeights(t)) LMS_SKIP("no prepacked kernels in the active kernel set");
    for (int64_t n : {8, 13, 45}) {
      for (int64_t m : {1, 2, 3, 4, 5, 6, 9, 17}) {
        const int64_t k = 576, ldx = k + 5, ldy = n + 3;
        INFO("type " << TensorTypeName(t) << " n=" << n << " m=" << m);
        const Weights w = MakeWeights(t, n, k, rng);
        const auto x = MakeActivations(m, ldx, rng);
        std::vector<uint8_t> prep(ActivationBytes(t, m, k));
        PrepareActivations(t, x.data(), m, k, ldx, prep.data());
        std::vector<float> want(static_cast<size_t>(m * ldy), -1.0f), got(want.size(), -1.0f);
        MatMulPrepared(t, w.bytes.data(), w.stride, 0, n, prep.data(), m, k, want.data(), ldy);
        std::vector<uint8_t> packed(PrepackedWeightBytes(t, n, k), 0xAB);
        const int64_t groups = (n + 7) / 8;
        PrepackWeights(t, w.bytes.data(), w.stride, n, k, 0, groups / 2, packed.data());
        PrepackWeights(t, w.bytes.data(), w.stride, n, k, groups / 2, groups, packed.data());
        // Column ranges split at multiples of 8, as threads take them.
        MatMulPrepackedWeights(t, packed.data(), n, 0, std::min<int64_t>(n, 8), prep.data(), m, k, got.data(), ldy);
        MatMulPrepackedWeights(t, packed.data(), n, std::min<int64_t>(n, 8), n, prep.data(), m, k, got.data(), ldy);
        REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
      }
    }
  }
}
