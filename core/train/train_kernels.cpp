#include "core/train/train_kernels.h"

#include <cmath>

namespace lms::train::kern {
namespace generic {

void DotRows(float* out, int64_t ldo, const float* a, int64_t lda, const float* w, int64_t r0,
             int64_t r1, int64_t N, int64_t K) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* ar = a + r * lda;
    for (int64_t n = 0; n < N; ++n) {
      const float* wn = w + n * K;
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s = std::fma(ar[k], wn[k], s);
      out[r * ldo + n] = s;
    }
  }
}

void AccumOuter(float* c, int64_t ldc, const float* a, int64_t a_rs, int64_t a_js, const float* b,
                int64_t ldb, int64_t r0, int64_t r1, int64_t K, int64_t J) {
  for (int64_t r = r0; r < r1; ++r) {
    float* cr = c + r * ldc;
    for (int64_t j = 0; j < J; ++j) {
      const float arj = a[r * a_rs + j * a_js];
      const float* bj = b + j * ldb;
      for (int64_t k = 0; k < K; ++k) cr[k] = std::fma(arj, bj[k], cr[k]);
    }
  }
}

}  // namespace generic

const Kernels& Generic() {
  static const Kernels k{&generic::DotRows, &generic::AccumOuter, "generic"};
  return k;
}

const Kernels& Best() {
  static const Kernels k = [] {
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      return Kernels{&avx2::DotRows, &avx2::AccumOuter, "avx2"};
    }
    return Generic();
  }();
  return k;
}

}  // namespace lms::train::kern
