// The operations of a Llama-style transformer in fp32, forward and backward side by side
// (llm.c's manner). Tensors are row-major; BT = rows (batch × time), C = channels.
// Backward functions ACCUMULATE (+=) into parameter gradients and into dinp unless the comment
// says the output is overwritten. Every op runs its rows on `pool`; results do not depend on the
// pool's size (each output element is reduced in one fixed order).
#pragma once

#include <cstdint>
#include <vector>

#include "core/util/thread_pool.h"

namespace lms::train {

// out (BT,C) = wte[tokens[t]] ; wte (V,C)
void EmbeddingForward(ThreadPool& pool, float* out, const int32_t* tokens, const float* wte,
                      int64_t BT, int64_t C);
// dwte (V,C) += scatter of dout (BT,C) by token
void EmbeddingBackward(ThreadPool& pool, float* dwte, const float* dout, const int32_t* tokens,
                       int64_t BT, int64_t C);

// out (BT,C) = inp * rstd * w ; rstd (BT) = 1/sqrt(mean(inp²) + eps) is saved for backward
void RmsNormForward(ThreadPool& pool, float* out, float* rstd, const float* inp, const float* w,
                    int64_t BT, int64_t C, float eps);
// dinp (BT,C) += ..., dw (C) += ...
void RmsNormBackward(ThreadPool& pool, float* dinp, float* dw, const float* dout, const float* inp,
                     const float* w, const float* rstd, int64_t BT, int64_t C);

// out (BT,N) = inp (BT,K) · w (N,K)ᵀ   (overwrites out)
void MatMulForward(ThreadPool& pool, float* out, const float* inp, const float* w, int64_t BT,
                   int64_t K, int64_t N);
// dinp (BT,K) += dout (BT,N) · w (N,K) when dinp != nullptr ; dw (N,K) += doutᵀ · inp
void MatMulBackward(ThreadPool& pool, float* dinp, float* dw, const float* dout, const float* inp,
                    const float* w, int64_t BT, int64_t K, int64_t N);

// Rotary embedding tables (T, n_dims/2): the float recurrence of the serving backend,
// theta_i = pos · base^(-2i/n_dims), positions 0..T-1 within each sequence.
struct RopeTable {
  int64_t T = 0, half = 0;
  bool neox = false;           // NeoX pairs (i, i+half) instead of (2i, 2i+1)
  std::vector<float> cos, sin; // (T, half)
};
RopeTable MakeRopeTable(int64_t T, int64_t head_dim, float theta_base, bool neox);
// x (B*T, H*hd) rotated in place; inverse=true applies the transpose (the backward pass).
void Rope(ThreadPool& pool, float* x, const RopeTable& rt, int64_t B, int64_t T, int64_t H,
          int64_t hd, bool inverse);

// Causal grouped-query attention.
//   q (BT, H*hd), k and v (BT, KV*hd), out (BT, H*hd) overwritten, att (B, H, T, T) saved
//   softmax probabilities (upper triangle zero).
void AttentionForward(ThreadPool& pool, float* out, float* att, const float* q, const float* k,
                      const float* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd);
// dq, dk, dv overwritten (same shapes as q, k, v).
void AttentionBackward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout,
                       const float* q, const float* k, const float* v, const float* att,
                       int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd);

// out (n) = silu(gate) * up
void SwiGluForward(ThreadPool& pool, float* out, const float* gate, const float* up, int64_t n);
// dgate, dup (n) overwritten
void SwiGluBackward(ThreadPool& pool, float* dgate, float* dup, const float* dout,
                    const float* gate, const float* up, int64_t n);

// Softmax cross-entropy over logits (BT,V) with targets (BT) (target < 0: ignored row).
// Writes dlogits = (softmax - onehot) * grad_scale into `logits` in place and returns the SUM
// of per-row losses (in double) and the number of counted rows.
struct LossSum {
  double sum = 0.0;
  int64_t count = 0;
};
LossSum CrossEntropyForwardBackward(ThreadPool& pool, float* logits, const int32_t* targets,
                                    int64_t BT, int64_t V, float grad_scale);

}  // namespace lms::train
