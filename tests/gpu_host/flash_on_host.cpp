// gpu/train/attention_flash.cu's kernels, their own source run on the CPU (cuda_host.h), against
// causal grouped-query attention in double: forward output and base-2 log-sum-exp, and the
// backward's dQ, dK, dV. bf16 operands alone give NMSE ~1e-5, so the bound is 1e-4 (the
// log-sum-exp: within 0.05 of the reference, a logarithm's error being absolute). Every output
// must be written (they start as NaN) and finite. Each shape runs with fp32 operands and again
// with bf16 ones. Exit status 0 when every shape passes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gpu/train/attention_flash.cu"

namespace {

using lms::gpu::train::LaunchFlashAttentionBackward;
using lms::gpu::train::LaunchFlashAttentionForward;

struct Shape {
  int B, T, H, KV, hd;
};

double Nmse(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? num / den : num;
}

bool AllFinite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

bool Check(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  const size_t nq = size_t(s.B) * s.T * s.H * s.hd, nk = size_t(s.B) * s.T * s.KV * s.hd, rows = size_t(s.B) * s.H * s.T;
  const auto q = random(nq), k = random(nk), v = random(nk), dout = random(nq);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> out(nq, nan), lse(rows, nan), D(rows, nan), dq(nq, nan), dk(nk, nan), dv(nk, nan);
  if (LaunchFlashAttentionForward(q.data(), k.data(), v.data(), out.data(), lse.data(), s.B, s.T, s.H, s.KV, s.hd,
                                  nullptr) != cudaSuccess ||
      LaunchFlashAttentionBackward(q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), D.data(),
                                   dq.data(), dk.data(), dv.data(), s.B, s.T, s.H, s.KV, s.hd, nullptr) != cudaSuccess) {
    std::printf("B=%d T=%d H=%d KV=%d hd=%d: launch refused\n", s.B, s.T, s.H, s.KV, s.hd);
    return false;
  }
  cudaDeviceSynchronize();  // the launches run when the host waits for them
  // The reference, in double.
  const double scale = 1.0 / std::sqrt(double(s.hd));
  std::vector<double> ro(nq), rl(rows), rdq(nq), rdk(nk, 0.0), rdv(nk, 0.0);
  const int group = s.H / s.KV;
  for (int b = 0; b < s.B; ++b) {
    for (int h = 0; h < s.H; ++h) {
      const int kvh = h / group;
      auto at_q = [&](int i, int c) { return (size_t(b * s.T + i) * s.H + h) * s.hd + c; };
      auto at_k = [&](int j, int c) { return (size_t(b * s.T + j) * s.KV + kvh) * s.hd + c; };
      for (int i = 0; i < s.T; ++i) {
        std::vector<double> sc(i + 1), p(i + 1), ds(i + 1);
        double mx = -1e300;
        for (int j = 0; j <= i; ++j) {
          double x = 0;
          for (int c = 0; c < s.hd; ++c) x += double(q[at_q(i, c)]) * k[at_k(j, c)];
          sc[j] = x * scale;
          mx = std::max(mx, sc[j]);
        }
        double l = 0;
        for (int j = 0; j <= i; ++j) l += std::exp(sc[j] - mx);
        rl[(size_t(b) * s.H + h) * s.T + i] = (mx + std::log(l)) / std::log(2.0);
        for (int j = 0; j <= i; ++j) p[j] = std::exp(sc[j] - mx) / l;
        double d_row = 0;
        for (int c = 0; c < s.hd; ++c) {
          double o = 0;
          for (int j = 0; j <= i; ++j) o += p[j] * v[at_k(j, c)];
          ro[at_q(i, c)] = o;
          d_row += o * dout[at_q(i, c)];
        }
        for (int j = 0; j <= i; ++j) {
          double x = 0;
          for (int c = 0; c < s.hd; ++c) x += double(dout[at_q(i, c)]) * v[at_k(j, c)];
          ds[j] = p[j] * (x - d_row);
        }
        for (int c = 0; c < s.hd; ++c) {
          double x = 0;
          for (int j = 0; j <= i; ++j) x += ds[j] * k[at_k(j, c)];
          rdq[at_q(i, c)] = x * scale;
        }
        for (int j = 0; j <= i; ++j) {
          for (int c = 0; c < s.hd; ++c) {
            rdk[at_k(j, c)] += ds[j] * q[at_q(i, c)] * scale;
            rdv[at_k(j, c)] += p[j] * dout[at_q(i, c)];
          }
        }
      }
    }
  }
  const double e_out = Nmse(out, ro), e_dq = Nmse(dq, rdq), e_dk = Nmse(dk, rdk), e_dv = Nmse(dv, rdv);
  double e_lse = 0;  // a logarithm: its error is absolute (log2 units)
  for (size_t i = 0; i < rows; ++i) e_lse = std::max(e_lse, std::fabs(lse[i] - rl[i]));
  const bool finite = AllFinite(out) && AllFinite(lse) && AllFinite(dq) && AllFinite(dk) && AllFinite(dv);
  // With one position dQ and dK are exactly 0 (dS = P·(dP − D), P = 1, D = dP): NMSE has no scale.
  const bool grads_qk = s.T == 1 || (e_dq < 1e-4 && e_dk < 1e-4);
  const bool ok = finite && e_out < 1e-4 && e_lse < 0.05 && e_dv < 1e-4 && grads_qk;
  std::printf("%s B=%d T=%d H=%d KV=%d hd=%d: NMSE out %.2e dq %.2e dk %.2e dv %.2e, lse within %.1e%s (%ld mma)\n",
              ok ? "ok  " : "FAIL", s.B, s.T, s.H, s.KV, s.hd, e_out, e_dq, e_dk, e_dv, e_lse,
              finite ? "" : ", not all written or finite", g_host.mma_count);

  // The same with every operand in bf16 (kBF16 training stages): the kernels read the same
  // values, so out and dV are the fp32 run's rounded, bit for bit, and lse is the same; dQ and
  // dK (D now from the rounded out and dO) meet the same bound against the reference.
  auto to16 = [](const std::vector<float>& x) {
    std::vector<__nv_bfloat16> b(x.size());
    for (size_t i = 0; i < x.size(); ++i) b[i] = __float2bfloat16_rn(x[i]);
    return b;
  };
  auto from16 = [](const std::vector<__nv_bfloat16>& b) {
    std::vector<float> x(b.size());
    for (size_t i = 0; i < b.size(); ++i) x[i] = __bfloat162float(b[i]);
    return x;
  };
  auto same16 = [&](const std::vector<__nv_bfloat16>& got, const std::vector<float>& f32) {
    const auto want = to16(f32);
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i].x != want[i].x) return false;
    }
    return true;
  };
  const auto q16 = to16(q), k16 = to16(k), v16 = to16(v), dout16 = to16(dout);
  const __nv_bfloat16 nan16 = __float2bfloat16_rn(nan);
  std::vector<__nv_bfloat16> out16(nq, nan16), dq16(nq, nan16), dk16(nk, nan16), dv16(nk, nan16);
  std::vector<float> lse16(rows, nan), D16(rows, nan);
  if (LaunchFlashAttentionForward(q16.data(), k16.data(), v16.data(), out16.data(), lse16.data(), s.B, s.T, s.H, s.KV,
                                  s.hd, nullptr) != cudaSuccess ||
      LaunchFlashAttentionBackward(q16.data(), k16.data(), v16.data(), out16.data(), dout16.data(), lse16.data(),
                                   D16.data(), dq16.data(), dk16.data(), dv16.data(), s.B, s.T, s.H, s.KV, s.hd,
                                   nullptr) != cudaSuccess) {
    std::printf("B=%d T=%d H=%d KV=%d hd=%d (bf16): launch refused\n", s.B, s.T, s.H, s.KV, s.hd);
    return false;
  }
  cudaDeviceSynchronize();
  const double e16_dq = Nmse(from16(dq16), rdq), e16_dk = Nmse(from16(dk16), rdk);
  const bool same_out = same16(out16, out), same_dv = same16(dv16, dv);
  const bool same_lse = std::equal(lse.begin(), lse.end(), lse16.begin(),
                                   [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; });
  const bool finite16 = AllFinite(from16(dq16)) && AllFinite(from16(dk16));
  const bool ok16 = same_out && same_dv && same_lse && finite16 && (s.T == 1 || (e16_dq < 1e-4 && e16_dk < 1e-4));
  std::printf("%s   bf16 operands: out %s, dv %s, lse %s; NMSE dq %.2e dk %.2e%s\n", ok16 ? "ok  " : "FAIL",
              same_out ? "= fp32 rounded" : "DIFFERS", same_dv ? "= fp32 rounded" : "DIFFERS",
              same_lse ? "the same" : "DIFFERS", e16_dq, e16_dk, finite16 ? "" : ", not all written or finite");
  return ok && ok16;
}

}  // namespace

int main() {
  // Tile edges (1, 64, 65, 130 positions), GQA groups, every head dim the kernels take.
  const Shape shapes[] = {{1, 1, 1, 1, 32},  {2, 7, 4, 2, 32},   {1, 64, 2, 1, 64},
                          {1, 65, 3, 1, 64}, {2, 130, 4, 2, 64}, {1, 100, 2, 2, 128},
                          {1, 70, 2, 1, 96}};
  bool all = true;
  uint32_t seed = 1;
  for (const Shape& s : shapes) all = Check(s, seed++) && all;
  return all ? 0 : 1;
}
