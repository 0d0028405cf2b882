// The training GEMM against a double-precision product, in the three layouts the ops use, with
// edge tiles and K blocks; and its determinism: bitwise equal for any thread count, any row
// range, and between the AVX2 and portable micro-kernels.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/train/train_gemm.h"
#include "core/util/thread_pool.h"

using namespace lms;
using namespace lms::train;

namespace {

std::vector<float> Rand(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// The layouts of y = x·Wᵀ (0), dx += dy·W (1) and dW += dyᵀ·x (2), as (A, B) views of a and b.
struct Case {
  MatView A, B;
};
Case Layout(int which, const std::vector<float>& a, const std::vector<float>& b, int64_t M, int64_t N,
            int64_t K) {
  switch (which) {
    case 0: return {{a.data(), K, 1}, {b.data(), 1, K}};  // a (M,K), b (N,K)
    case 1: return {{a.data(), K, 1}, {b.data(), N, 1}};  // a (M,K), b (K,N)
    default: return {{a.data(), 1, M}, {b.data(), N, 1}};  // a (K,M), b (K,N)
  }
}

}  // namespace

TEST_CASE("train gemm: matches a double product in every layout", "[train][gemm]") {
  const int64_t shapes[][3] = {{1, 1, 1}, {7, 17, 5}, {6, 16, 256}, {13, 35, 300}, {150, 40, 513}, {200, 2100, 20}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int which = 0; which < 3; ++which) {
      for (bool acc : {false, true}) {
        const auto a = Rand(M * K, 1), b = Rand(N * K, 2);
        std::vector<float> c = Rand(M * N, 3), c0 = c;
        const Case cs = Layout(which, a, b, M, N, K);
        Gemm(nullptr, M, N, K, cs.A, cs.B, c.data(), N, acc);
        double worst = 0;
        for (int64_t i = 0; i < M; ++i) {
          for (int64_t j = 0; j < N; ++j) {
            double ref = acc ? c0[i * N + j] : 0.0, mag = std::fabs(ref);
            for (int64_t p = 0; p < K; ++p) {
              const double t = double{cs.A.p[i * cs.A.rs + p * cs.A.cs]} * cs.B.p[p * cs.B.rs + j * cs.B.cs];
              ref += t;
              mag += std::fabs(t);
            }
            worst = std::max(worst, std::fabs(c[i * N + j] - ref) / (mag + 1e-30));
          }
        }
        INFO("M=" << M << " N=" << N << " K=" << K << " layout " << which << " acc " << acc);
        CHECK(worst < 1e-6);
      }
    }
  }
}

TEST_CASE("train gemm: bitwise the same for any threads, row range and micro-kernel", "[train][gemm]") {
  const int64_t M = 130, N = 70, K = 600;
  const auto a = Rand(M * K, 4), b = Rand(N * K, 5), c_init = Rand(M * N, 6);
  for (int which = 0; which < 3; ++which) {
    const Case cs = Layout(which, a, b, M, N, K);
    std::vector<float> ref = c_init;
    Gemm(nullptr, M, N, K, cs.A, cs.B, ref.data(), N, true);
    for (int threads : {2, 3}) {
      ThreadPool pool(threads);
      std::vector<float> c = c_init;
      Gemm(&pool, M, N, K, cs.A, cs.B, c.data(), N, true);
      CHECK(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)) == 0);
      // Transposed shape so the pool splits the other dimension.
      std::vector<float> ct(static_cast<size_t>(M * N), 0.0f), ct1 = ct;
      const MatView At{cs.B.p, cs.B.cs, cs.B.rs}, Bt{cs.A.p, cs.A.cs, cs.A.rs};
      Gemm(&pool, N, M, K, At, Bt, ct.data(), M, false);
      Gemm(nullptr, N, M, K, At, Bt, ct1.data(), M, false);
      CHECK(std::memcmp(ct.data(), ct1.data(), ct.size() * sizeof(float)) == 0);
    }
    // Rows in two pieces (as micro-batches would be).
    std::vector<float> c = c_init;
    const int64_t cut = 47;
    Gemm(nullptr, cut, N, K, cs.A, cs.B, c.data(), N, true);
    Gemm(nullptr, M - cut, N, K, MatView{cs.A.p + cut * cs.A.rs, cs.A.rs, cs.A.cs}, cs.B, c.data() + cut * N, N, true);
    CHECK(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)) == 0);
    // The portable micro-kernel does the same arithmetic.
    const bool was = gemm::UseGenericForTesting(true);
    c = c_init;
    Gemm(nullptr, M, N, K, cs.A, cs.B, c.data(), N, true);
    gemm::UseGenericForTesting(was);
    CHECK(std::memcmp(c.data(), ref.data(), c.size() * sizeof(float)) == 0);
  }
}
