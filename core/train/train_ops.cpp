#include "core/train/train_ops.h"

#include <algorithm>
#include <cmath>

#include "core/train/train_gemm.h"
#include "core/train/train_swiglu.h"

namespace lms::train {
namespace {

// Rows per task: small enough to balance, large enough that a task is worth its dispatch.
void ParallelRows(ThreadPool& pool, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (pool.size() == 1 || n == 1) {
    fn(0, n);
    return;
  }
  pool.ParallelFor(n, fn);
}

}  // namespace

void EmbeddingForward(ThreadPool& pool, float* out, const int32_t* tokens, const float* wte,
                      int64_t BT, int64_t C) {
  ParallelRows(pool, BT, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) std::copy_n(wte + int64_t{tokens[t]} * C, C, out + t * C);
  });
}

void EmbeddingBackward(ThreadPool& pool, float* dwte, const float* dout, const int32_t* tokens,
                       int64_t BT, int64_t C) {
  // Split by channel so no two threads touch the same dwte element; rows summed in t order.
  ParallelRows(pool, C, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < BT; ++t) {
      float* d = dwte + int64_t{tokens[t]} * C;
      const float* g = dout + t * C;
      for (int64_t c = c0; c < c1; ++c) d[c] += g[c];
    }
  });
}

void RmsNormForward(ThreadPool& pool, float* out, float* rstd, const float* inp, const float* w,
                    int64_t BT, int64_t C, float eps) {
  ParallelRows(pool, BT, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* x = inp + t * C;
      double ss = 0.0;
      for (int64_t c = 0; c < C; ++c) ss += double{x[c]} * x[c];
      const float s = static_cast<float>(1.0 / std::sqrt(ss / C + eps));
      rstd[t] = s;
      float* o = out + t * C;
      for (int64_t c = 0; c < C; ++c) o[c] = x[c] * s * w[c];
    }
  });
}

void RmsNormBackward(ThreadPool& pool, float* dinp, float* dw, const float* dout, const float* inp,
                     const float* w, const float* rstd, int64_t BT, int64_t C) {
  // y = x·s·w with s = (mean(x²)+eps)^-1/2:  dx = s·(dy·w) − x·s³·mean(dy·w·x)
  ParallelRows(pool, BT, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* x = inp + t * C;
      const float* g = dout + t * C;
      const float s = rstd[t];
      double dot = 0.0;
      for (int64_t c = 0; c < C; ++c) dot += double{g[c]} * w[c] * x[c];
      const float k = static_cast<float>(dot / C) * s * s * s;
      float* dx = dinp + t * C;
      for (int64_t c = 0; c < C; ++c) dx[c] += s * g[c] * w[c] - k * x[c];
    }
  });
  // dw[c] += Σ_t dy·x·s, by channel so each element sums rows in t order.
  ParallelRows(pool, C, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < BT; ++t) {
      const float* x = inp + t * C;
      const float* g = dout + t * C;
      const float s = rstd[t];
      for (int64_t c = c0; c < c1; ++c) dw[c] += g[c] * x[c] * s;
    }
  });
}

void MatMulForward(ThreadPool& pool, float* out, const float* inp, const float* w, int64_t BT,
                   int64_t K, int64_t N) {
  // out (BT,N) = inp (BT,K) · wᵀ ; w (N,K) read as B[k][n] = w[n][k]
  Gemm(&pool, BT, N, K, MatView{inp, K, 1}, MatView{w, 1, K}, out, N, false);
}

void MatMulBackward(ThreadPool& pool, float* dinp, float* dw, const float* dout, const float* inp,
                    const float* w, int64_t BT, int64_t K, int64_t N) {
  // dinp[t][k] += Σ_n dout[t][n] · w[n][k]
  if (dinp) Gemm(&pool, BT, K, N, MatView{dout, N, 1}, MatView{w, K, 1}, dinp, K, true);
  // dw[n][k] += Σ_t dout[t][n] · inp[t][k] ; A[n][t] = dout[t][n]
  Gemm(&pool, N, K, BT, MatView{dout, 1, N}, MatView{inp, K, 1}, dw, K, true);
}

RopeTable MakeRopeTable(int64_t T, int64_t head_dim, float theta_base, bool neox) {
  RopeTable rt;
  rt.T = T;
  rt.half = head_dim / 2;
  rt.neox = neox;
  rt.cos.resize(static_cast<size_t>(T * rt.half));
  rt.sin.resize(rt.cos.size());
  const float theta_scale = std::pow(theta_base, -2.0f / static_cast<float>(head_dim));
  for (int64_t t = 0; t < T; ++t) {
    float theta = static_cast<float>(t);
    for (int64_t i = 0; i < rt.half; ++i) {
      rt.cos[t * rt.half + i] = std::cos(theta);
      rt.sin[t * rt.half + i] = std::sin(theta);
      theta *= theta_scale;
    }
  }
  return rt;
}

void Rope(ThreadPool& pool, float* x, const RopeTable& rt, int64_t B, int64_t T, int64_t H,
          int64_t hd, bool inverse) {
  const float sign = inverse ? -1.0f : 1.0f;
  const int64_t half = rt.half;
  ParallelRows(pool, B * T, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r % T;
      const float* cs = &rt.cos[t * half];
      const float* sn = &rt.sin[t * half];
      for (int64_t h = 0; h < H; ++h) {
        float* v = x + r * H * hd + h * hd;
        for (int64_t i = 0; i < half; ++i) {
          const int64_t a = rt.neox ? i : 2 * i, b = rt.neox ? i + half : 2 * i + 1;
          const float x0 = v[a], x1 = v[b], s = sign * sn[i];
          v[a] = x0 * cs[i] - x1 * s;
          v[b] = x0 * s + x1 * cs[i];
        }
      }
    }
  });
}

// Attention runs per (sequence, head) on the training GEMM, in blocks of query rows: a block
// [r0, r1) computes scores against keys below r1 only (the masked rest is set to zero), and the
// products with P skip the terms where P is masked. Those terms are exact zeros, so every result
// equals that of the full square.
constexpr int64_t kCausalRows = 36;  // whole 6-row tiles

void AttentionForward(ThreadPool& pool, float* out, float* att, const float* q, const float* k,
                      const float* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd) {
  const int64_t qd = H * hd, kvd = KV * hd, group = H / KV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  ParallelRows(pool, B * H, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H, kh = h / group;
      float* a = att + (b * H + h) * T * T;                 // (T, T)
      const float* qh = q + b * T * qd + h * hd;            // rows of stride qd
      const float* kr = k + b * T * kvd + kh * hd;          // this head's keys, rows of stride kvd
      for (int64_t r0 = 0; r0 < T; r0 += kCausalRows) {  // a = Q·Kᵀ, columns up to the block's end
        const int64_t r1 = std::min(T, r0 + kCausalRows);
        Gemm(nullptr, r1 - r0, r1, hd, MatView{qh + r0 * qd, qd, 1}, MatView{kr, 1, kvd}, a + r0 * T, T, false);
      }
      for (int64_t t = 0; t < T; ++t) {
        float* r = a + t * T;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) mx = std::max(mx, r[j] *= scale);
        float sum = 0.0f;
        for (int64_t j = 0; j <= t; ++j) sum += (r[j] = std::exp(r[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= t; ++j) r[j] *= inv;
        std::fill(r + t + 1, r + T, 0.0f);
      }
      const float* vr = v + b * T * kvd + kh * hd;
      float* oh = out + b * T * qd + h * hd;
      for (int64_t r0 = 0; r0 < T; r0 += kCausalRows) {  // out = P·V over the visible keys
        const int64_t r1 = std::min(T, r0 + kCausalRows);
        Gemm(nullptr, r1 - r0, hd, r1, MatView{a + r0 * T, T, 1}, MatView{vr, kvd, 1}, oh + r0 * qd, qd, false);
      }
    }
  });
}

void AttentionBackward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout,
                       const float* q, const float* k, const float* v, const float* att,
                       int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd) {
  const int64_t qd = H * hd, kvd = KV * hd, group = H / KV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One task per (sequence, kv head): it alone writes that head's dk/dv columns and the dq
  // columns of the query heads sharing it.
  ParallelRows(pool, B * KV, [&](int64_t i0, int64_t i1) {
    std::vector<float> ds(static_cast<size_t>(T * T));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / KV, kh = i % KV;
      float* dkh = dk + b * T * kvd + kh * hd;
      float* dvh = dv + b * T * kvd + kh * hd;
      const float* kr = k + b * T * kvd + kh * hd;
      const float* vr = v + b * T * kvd + kh * hd;
      for (int64_t t = 0; t < T; ++t) {
        std::fill_n(dkh + t * kvd, hd, 0.0f);
        std::fill_n(dvh + t * kvd, hd, 0.0f);
      }
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const float* a = att + (b * H + h) * T * T;
        const float* g = dout + b * T * qd + h * hd;
        const float* qh = q + b * T * qd + h * hd;
        float* dqh = dq + b * T * qd + h * hd;
        // out = P·V:  dP = dout·Vᵀ,  dV += Pᵀ·dout
        for (int64_t r0 = 0; r0 < T; r0 += kCausalRows) {
          const int64_t r1 = std::min(T, r0 + kCausalRows);
          // dP rows [r0, r1): keys up to r1; dV rows [r0, r1): queries from r0 on
          Gemm(nullptr, r1 - r0, r1, hd, MatView{g + r0 * qd, qd, 1}, MatView{vr, 1, kvd}, ds.data() + r0 * T, T, false);
          Gemm(nullptr, r1 - r0, hd, T - r0, MatView{a + r0 * T + r0, 1, T}, MatView{g + r0 * qd, qd, 1}, dvh + r0 * kvd,
               kvd, true);
        }
        // softmax: dS = P ⊙ (dP − rowsum(P ⊙ dP)), times the score scale
        for (int64_t t = 0; t < T; ++t) {
          const float* p = a + t * T;
          float* d = ds.data() + t * T;
          float dot = 0.0f;
          for (int64_t j = 0; j <= t; ++j) dot += p[j] * d[j];
          for (int64_t j = 0; j <= t; ++j) d[j] = p[j] * (d[j] - dot) * scale;
          std::fill(d + t + 1, d + T, 0.0f);
        }
        // S = Q·Kᵀ:  dQ = dS·K,  dK += dSᵀ·Q
        for (int64_t r0 = 0; r0 < T; r0 += kCausalRows) {
          const int64_t r1 = std::min(T, r0 + kCausalRows);
          Gemm(nullptr, r1 - r0, hd, r1, MatView{ds.data() + r0 * T, T, 1}, MatView{kr, kvd, 1}, dqh + r0 * qd, qd, false);
          Gemm(nullptr, r1 - r0, hd, T - r0, MatView{ds.data() + r0 * T + r0, 1, T}, MatView{qh + r0 * qd, qd, 1},
               dkh + r0 * kvd, kvd, true);
        }
      }
    }
  });
}

namespace {
bool HasAvx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
}  // namespace

void SwiGluForward(ThreadPool& pool, float* out, const float* gate, const float* up, int64_t n) {
  ParallelRows(pool, n, [&](int64_t i0, int64_t i1) {
    if (HasAvx2()) return avx2::SwiGluForward(out, gate, up, i0, i1);
    for (int64_t i = i0; i < i1; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void SwiGluBackward(ThreadPool& pool, float* dgate, float* dup, const float* dout,
                    const float* gate, const float* up, int64_t n) {
  ParallelRows(pool, n, [&](int64_t i0, int64_t i1) {
    if (HasAvx2()) return avx2::SwiGluBackward(dgate, dup, dout, gate, up, i0, i1);
    for (int64_t i = i0; i < i1; ++i) {
      const float g = gate[i], sig = 1.0f / (1.0f + std::exp(-g));
      dup[i] = dout[i] * g * sig;
      // d silu(g)/dg = σ(g) (1 + g (1 − σ(g)))
      dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    }
  });
}

LossSum CrossEntropyForwardBackward(ThreadPool& pool, float* logits, const int32_t* targets,
                                    int64_t BT, int64_t V, float grad_scale) {
  std::vector<double> row_loss(static_cast<size_t>(BT), 0.0);
  ParallelRows(pool, BT, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* l = logits + t * V;
      const int32_t y = targets[t];
      if (y < 0) {
        std::fill_n(l, V, 0.0f);
        continue;
      }
      float mx = -INFINITY;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, l[i]);
      double sum = 0.0;
      for (int64_t i = 0; i < V; ++i) sum += std::exp(double{l[i]} - mx);
      const double lse = std::log(sum) + mx;
      row_loss[t] = lse - l[y];
      for (int64_t i = 0; i < V; ++i) {
        const float p = static_cast<float>(std::exp(double{l[i]} - lse));
        l[i] = (p - (i == y ? 1.0f : 0.0f)) * grad_scale;
      }
    }
  });
  LossSum s;
  for (int64_t t = 0; t < BT; ++t) {
    if (targets[t] >= 0) {
      s.sum += row_loss[t];
      ++s.count;
    }
  }
  return s;
}

}  // namespace lms::train
