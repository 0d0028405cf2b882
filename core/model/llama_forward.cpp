#include "core/model/llama_forward.h"

#include <fmt/format.h>

#include <cmath>

namespace lms {
namespace {

// The first `rows` rows of a buffer.
TensorView Rows(const TensorView& t, int64_t rows) {
  TensorView v = t;
  v.rows = rows;
  return v;
}

}  // namespace

Result<std::unique_ptr<LlamaForward>> LlamaForward::Create(const ModelConfig& c, const ModelWeights& w,
                                                           Backend& b, int32_t max_tokens) {
  if (max_tokens <= 0) return Status::InvalidArgument("batch size must be positive");
  std::unique_ptr<LlamaForward> f(new LlamaForward(c, w, b, max_tokens));
  const int64_t T = max_tokens, d = c.d_model, qd = int64_t{c.n_heads} * c.head_dim,
                kvd = int64_t{c.n_kv_heads} * c.head_dim;
  auto alloc = [&](TensorView& dst, int64_t rows, int64_t cols) -> Status {
    LMS_ASSIGN_OR_RETURN(dst, b.Allocate(TensorType::kF32, rows, cols));
    return Status::Ok();
  };
  LMS_RETURN_IF_ERROR(alloc(f->x_, T, d));          // residual stream (T, d)
  LMS_RETURN_IF_ERROR(alloc(f->xn_, T, d));         // normalised input of a sub-layer (T, d)
  LMS_RETURN_IF_ERROR(alloc(f->q_, T, qd));         // (T, n_heads*hd)
  LMS_RETURN_IF_ERROR(alloc(f->k_, T, kvd));        // (T, n_kv*hd)
  LMS_RETURN_IF_ERROR(alloc(f->v_, T, kvd));
  LMS_RETURN_IF_ERROR(alloc(f->attn_, T, qd));      // attention output before projection
  LMS_RETURN_IF_ERROR(alloc(f->proj_, T, d));       // sub-layer output added to the stream
  LMS_RETURN_IF_ERROR(alloc(f->gate_, T, c.d_ff));  // (T, d_ff)
  LMS_RETURN_IF_ERROR(alloc(f->up_, T, c.d_ff));
  LMS_RETURN_IF_ERROR(alloc(f->hidden_, T, c.d_ff));
  LMS_RETURN_IF_ERROR(alloc(f->last_, T, d));       // rows whose logits are wanted
  LMS_RETURN_IF_ERROR(alloc(f->last_norm_, T, d));
  LMS_RETURN_IF_ERROR(alloc(f->logits_, T, c.n_vocab));
  return f;
}

Status LlamaForward::Forward(const BatchLayout& batch, KvCache& kv, float* logits) {
  LMS_ASSIGN_OR_RETURN(const int64_t R, Run(batch, kv));
  if (R == 0) return Status::Ok();
  return backend_.CopyToHost(Rows(logits_, R), logits, static_cast<size_t>(R) * config_.n_vocab * sizeof(float));
}

Status LlamaForward::ForwardGreedy(const BatchLayout& batch, KvCache& kv, int32_t* ids) {
  LMS_ASSIGN_OR_RETURN(const int64_t R, Run(batch, kv));
  if (R == 0) return Status::Ok();
  return backend_.ArgMaxRows(Rows(logits_, R), ids);
}

Result<int64_t> LlamaForward::Run(const BatchLayout& batch, KvCache& kv) {
  const int32_t T = batch.n_tokens();
  if (T <= 0) return Status::InvalidArgument("empty batch");
  if (T > max_tokens_) {
    return Status::InvalidArgument(fmt::format("batch of {} tokens exceeds the planned {}", T, max_tokens_));
  }
  const auto& c = config_;
  Backend& b = backend_;
  LMS_RETURN_IF_ERROR(b.BeginBatch(batch));

  const TensorView x = Rows(x_, T), xn = Rows(xn_, T), q = Rows(q_, T), k = Rows(k_, T),
                   v = Rows(v_, T), attn = Rows(attn_, T), proj = Rows(proj_, T),
                   gate = Rows(gate_, T), up = Rows(up_, T), hidden = Rows(hidden_, T);
  RopeParams rope{c.rope_dims, c.rope_theta, c.rope_freq_scale, c.rope_neox};
  AttentionParams ap{c.n_heads, c.n_kv_heads, c.head_dim, kv.block_size(),
                     1.0f / std::sqrt(static_cast<float>(c.head_dim))};

  LMS_RETURN_IF_ERROR(b.Embed(weights_.token_embd, x));
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = weights_.layers[l];
    // Attention block: x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
    const TensorView qkv_w[] = {L.wq, L.wk, L.wv};
    const TensorView qkv_b[] = {L.bq, L.bk, L.bv};
    const TensorView qkv_o[] = {q, k, v};
    LMS_RETURN_IF_ERROR(b.NormLinear(x, L.attn_norm, c.rms_eps, xn, qkv_w,
                                     c.qkv_bias ? std::span<const TensorView>(qkv_b) : std::span<const TensorView>(),
                                     qkv_o));
    LMS_RETURN_IF_ERROR(b.RopeStoreKv(q, k, v, c.head_dim, rope, kv.k(l), kv.v(l)));
    LMS_RETURN_IF_ERROR(b.Attention(q, kv.k(l), kv.v(l), ap, attn));
    LMS_RETURN_IF_ERROR(b.LinearAdd(attn, L.wo, proj, x));
    // Feed-forward block: x += W_down · (silu(W_gate·n(x)) * W_up·n(x))
    LMS_RETURN_IF_ERROR(b.NormLinearSwiGlu(x, L.ffn_norm, c.rms_eps, xn, L.w_gate, L.w_up, gate, up, hidden));
    LMS_RETURN_IF_ERROR(b.LinearAdd(hidden, L.w_down, proj, x));
  }
  const int64_t R = static_cast<int64_t>(batch.logit_rows.size());
  if (R == 0) return R;
  const TensorView last = Rows(last_, R), last_norm = Rows(last_norm_, R), out = Rows(logits_, R);
  LMS_RETURN_IF_ERROR(b.GatherLogitRows(x, last));
  const TensorView head_w[] = {weights_.output};
  const TensorView head_o[] = {out};
  LMS_RETURN_IF_ERROR(b.NormLinear(last, weights_.output_norm, c.rms_eps, last_norm, head_w, {}, head_o));
  return R;
}

}  // namespace lms
