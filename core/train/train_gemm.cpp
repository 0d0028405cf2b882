#include "core/train/train_gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <new>

#include "core/util/thread_pool.h"

namespace lms::train {
namespace gemm {

void MicroKernelGeneric(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool load) {
  float acc[kMR][kNR];
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
  for (int64_t p = 0; p < kc; ++p, a += kMR, b += kNR)
    for (int i = 0; i < kMR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] = std::fma(a[i], b[j], acc[i][j]);
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) c[i * ldc + j] = acc[i][j];
}

void MicroKernelRowsGeneric(int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                            int64_t ldc, bool load) {
  float acc[kMR][kNR];
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = load ? c[i * ldc + j] : 0.0f;
  for (int64_t p = 0; p < kc; ++p, b += kNR)
    for (int i = 0; i < kMR; ++i)
      for (int j = 0; j < kNR; ++j) acc[i][j] = std::fma(a[i * lda + p], b[j], acc[i][j]);
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) c[i * ldc + j] = acc[i][j];
}

namespace {
std::atomic<bool> g_force_generic{false};
bool HasAvx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
}  // namespace

bool UseGenericForTesting(bool on) { return g_force_generic.exchange(on); }
const char* MicroKernelName() { return HasAvx2() && !g_force_generic.load() ? "avx2 6x16" : "generic 6x16"; }

}  // namespace gemm

namespace {

using gemm::kMR;
using gemm::kNR;

// Block sizes: a kc×16 B panel (16 KiB) stays in L1 while the 6-row A panels of an mc×kc block
// (144 KiB, in L2) stream past it; the kc×nc B block lives in L2/L3.
constexpr int64_t kKC = 256, kMC = 144, kNC = 2048;

struct AlignedFree {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
};

// Per-thread packing buffers, grown on demand.
float* Buffer(int which, int64_t n) {
  thread_local std::unique_ptr<float[], AlignedFree> buf[2];
  thread_local int64_t cap[2] = {0, 0};
  if (cap[which] < n) {
    buf[which].reset(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t{64})));
    cap[which] = n;
  }
  return buf[which].get();
}

// A rows [i0, i0+mc) × columns [p0, p0+kc) into 6-row panels: panel r holds a[p][i] at p*6 + i.
void PackA(const MatView& A, int64_t i0, int64_t p0, int64_t mc, int64_t kc, float* dst) {
  for (int64_t ir = 0; ir < mc; ir += kMR, dst += kMR * kc) {
    const int64_t mr = std::min<int64_t>(kMR, mc - ir);
    if (mr < kMR) std::fill_n(dst, kMR * kc, 0.0f);
    if (A.cs == 1) {
      for (int64_t i = 0; i < mr; ++i) {
        const float* src = A.p + (i0 + ir + i) * A.rs + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * kMR + i] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = A.p + (p0 + p) * A.cs + (i0 + ir) * A.rs;
        for (int64_t i = 0; i < mr; ++i) dst[p * kMR + i] = src[i * A.rs];
      }
    }
  }
}

// B rows [p0, p0+kc) × columns [j0, j0+nc) into 16-column panels: b[p][j] at p*16 + j.
void PackB(const MatView& B, int64_t p0, int64_t j0, int64_t kc, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += kNR, dst += kNR * kc) {
    const int64_t nr = std::min<int64_t>(kNR, nc - jr);
    if (nr < kNR) std::fill_n(dst, kNR * kc, 0.0f);
    if (B.cs == 1) {
      if (nr == kNR) {
        for (int64_t p = 0; p < kc; ++p) {
          const float* src = B.p + (p0 + p) * B.rs + j0 + jr;
          for (int j = 0; j < kNR; ++j) dst[p * kNR + j] = src[j];
        }
      } else {
        for (int64_t p = 0; p < kc; ++p) std::copy_n(B.p + (p0 + p) * B.rs + j0 + jr, nr, dst + p * kNR);
      }
    } else {
      for (int64_t j = 0; j < nr; ++j) {
        const float* src = B.p + (j0 + jr + j) * B.cs + p0 * B.rs;
        for (int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = src[p * B.rs];
      }
    }
  }
}

struct Kernels {
  gemm::MicroKernelFn packed;
  gemm::MicroKernelRowsFn rows;
};

void GemmSerial(int64_t M, int64_t N, int64_t K, const MatView& A, const MatView& B, float* C,
                int64_t ldc, bool accumulate, const Kernels& kn) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill_n(C + i * ldc, N, 0.0f);
    return;
  }
  const int64_t nc_max = std::min(kNC, (N + kNR - 1) / kNR * kNR);
  float* bbuf = Buffer(0, kKC * nc_max);
  float* abuf = Buffer(1, kKC * kMC);
  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const bool load = accumulate || pc > 0;
      PackB(B, pc, jc, kc, nc, bbuf);
      for (int64_t ic = 0; ic < M; ic += kMC) {
        const int64_t mc = std::min(kMC, M - ic);
        // Rows of A that are contiguous in k are read in place, except a short last panel.
        const bool in_place = A.cs == 1;
        const int64_t full = in_place ? mc / kMR * kMR : 0;
        if (full < mc) PackA(A, ic + full, pc, mc - full, kc, abuf + full * kc);
        for (int64_t jr = 0; jr < nc; jr += kNR) {
          const int64_t nr = std::min<int64_t>(kNR, nc - jr);
          const float* bp = bbuf + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int64_t mr = std::min<int64_t>(kMR, mc - ir);
            const float* ap = abuf + ir * kc;
            float* c = C + (ic + ir) * ldc + jc + jr;
            if (ir < full) {
              const float* ar = A.p + (ic + ir) * A.rs + pc;
              if (nr == kNR) {
                kn.rows(kc, ar, A.rs, bp, c, ldc, load);
              } else {
                alignas(32) float t[kMR * kNR] = {};
                if (load)
                  for (int64_t i = 0; i < mr; ++i) std::copy_n(c + i * ldc, nr, t + i * kNR);
                kn.rows(kc, ar, A.rs, bp, t, kNR, load);
                for (int64_t i = 0; i < mr; ++i) std::copy_n(t + i * kNR, nr, c + i * ldc);
              }
              continue;
            }
            if (mr == kMR && nr == kNR) {
              kn.packed(kc, ap, bp, c, ldc, load);
              continue;
            }
            // Edge tile: through a full-size scratch tile, same chains for the valid elements.
            alignas(32) float t[kMR * kNR] = {};
            if (load)
              for (int64_t i = 0; i < mr; ++i) std::copy_n(c + i * ldc, nr, t + i * kNR);
            kn.packed(kc, ap, bp, t, kNR, load);
            for (int64_t i = 0; i < mr; ++i) std::copy_n(t + i * kNR, nr, c + i * ldc);
          }
        }
      }
    }
  }
}

}  // namespace

void Gemm(ThreadPool* pool, int64_t M, int64_t N, int64_t K, MatView A, MatView B, float* C,
          int64_t ldc, bool accumulate) {
  const bool fast = gemm::HasAvx2() && !gemm::g_force_generic.load();
  const Kernels mk = fast ? Kernels{&gemm::MicroKernelAvx2, &gemm::MicroKernelRowsAvx2}
                          : Kernels{&gemm::MicroKernelGeneric, &gemm::MicroKernelRowsGeneric};
  // Small products are not worth a fork/join.
  const int nt = pool && M * N * K >= (int64_t{1} << 18) ? pool->size() : 1;
  if (nt == 1) {
    GemmSerial(M, N, K, A, B, C, ldc, accumulate, mk);
    return;
  }
  // Split in whole tiles. Each thread packs the operand it does not split: when A is read in
  // place (rows contiguous in k) splitting N duplicates nothing; otherwise split the larger
  // dimension, which duplicates the smaller share of packing.
  const bool split_m = A.cs == 1 ? (N + kNR - 1) / kNR < nt : M >= N;
  const int64_t unit = split_m ? kMR : kNR, tiles = ((split_m ? M : N) + unit - 1) / unit;
  pool->Run([&](int t, int n) {
    const int64_t a = std::min(split_m ? M : N, tiles * t / n * unit);
    const int64_t b = std::min(split_m ? M : N, tiles * (t + 1) / n * unit);
    if (a >= b) return;
    if (split_m) {
      GemmSerial(b - a, N, K, MatView{A.p + a * A.rs, A.rs, A.cs}, B, C + a * ldc, ldc, accumulate, mk);
    } else {
      GemmSerial(M, b - a, K, A, MatView{B.p + a * B.cs, B.rs, B.cs}, C + a, ldc, accumulate, mk);
    }
  });
}

}  // namespace lms::train
