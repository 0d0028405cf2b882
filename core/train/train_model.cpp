#include "core/train/train_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lms::train {

Status ModelShape::Validate() const {
  auto bad = [](const std::string& m) { return Status::InvalidArgument("model shape: " + m); };
  if (n_layers < 1) return bad("layers must be at least 1");
  if (d_model < 2 || n_heads < 1 || n_kv_heads < 1) return bad("d_model, heads and kv_heads must be positive");
  if (d_model % n_heads != 0) return bad(fmt::format("d_model {} is not a multiple of heads {}", d_model, n_heads));
  if (n_heads % n_kv_heads != 0) return bad(fmt::format("heads {} is not a multiple of kv_heads {}", n_heads, n_kv_heads));
  if (head_dim() % 2 != 0) return bad("head dimension must be even (rotary pairs)");
  if (d_ff < 1) return bad("d_ff must be positive");
  if (n_vocab < 2) return bad("vocabulary must have at least 2 tokens");
  if (seq_len < 1) return bad("seq_len must be positive");
  if (!(rope_theta > 0.0f) || !(rms_eps > 0.0f)) return bad("rope_theta and rms_eps must be positive");
  return Status::Ok();
}

std::string ModelShape::Summary() const {
  return fmt::format("{} layers d={} ff={} heads {}/{} vocab {} seq {}{}", n_layers, d_model, d_ff,
                     n_heads, n_kv_heads, n_vocab, seq_len, tied ? " tied" : "");
}

ParamLayout ParamLayout::For(const ModelShape& s) {
  ParamLayout L;
  int64_t off = 0;
  auto add = [&](ParamTensor& t, std::string name, int64_t rows, int64_t cols, bool matrix) {
    t.name = std::move(name);
    t.offset = off;
    t.rows = rows;
    t.cols = cols;
    t.matrix = matrix;
    off += rows * cols;
  };
  const int64_t d = s.d_model, qd = int64_t{s.n_heads} * s.head_dim(), kvd = int64_t{s.n_kv_heads} * s.head_dim();
  add(L.token_embd, "token_embd.weight", s.n_vocab, d, true);
  L.layers.resize(s.n_layers);
  for (int l = 0; l < s.n_layers; ++l) {
    auto& P = L.layers[l];
    const std::string b = fmt::format("blk.{}.", l);
    add(P.attn_norm, b + "attn_norm.weight", 1, d, false);
    add(P.wq, b + "attn_q.weight", qd, d, true);
    add(P.wk, b + "attn_k.weight", kvd, d, true);
    add(P.wv, b + "attn_v.weight", kvd, d, true);
    add(P.wo, b + "attn_output.weight", d, qd, true);
    add(P.ffn_norm, b + "ffn_norm.weight", 1, d, false);
    add(P.w_gate, b + "ffn_gate.weight", s.d_ff, d, true);
    add(P.w_up, b + "ffn_up.weight", s.d_ff, d, true);
    add(P.w_down, b + "ffn_down.weight", d, s.d_ff, true);
  }
  add(L.output_norm, "output_norm.weight", 1, d, false);
  if (!s.tied) {
    add(L.output, "output.weight", s.n_vocab, d, true);
  } else {
    L.output = ParamTensor{};
    L.output.rows = 0;
    L.output.offset = off;
  }
  L.total = off;
  return L;
}

std::vector<const ParamTensor*> ParamLayout::All() const {
  std::vector<const ParamTensor*> v{&token_embd};
  for (const auto& P : layers) {
    for (const ParamTensor* t : {&P.attn_norm, &P.wq, &P.wk, &P.wv, &P.wo, &P.ffn_norm, &P.w_gate, &P.w_up, &P.w_down}) {
      v.push_back(t);
    }
  }
  v.push_back(&output_norm);
  if (output.size()) v.push_back(&output);
  return v;
}

std::pair<int64_t, int64_t> ParamLayout::StageRange(int l0, int l1, bool first, bool last) const {
  const int64_t begin = first ? token_embd.offset : layers[l0].attn_norm.offset;
  const int64_t end = last ? total : (l1 < static_cast<int>(layers.size()) ? layers[l1].attn_norm.offset : output_norm.offset);
  return {begin, end};
}

void InitParams(const ModelShape& s, const ParamLayout& layout, uint64_t seed, std::vector<float>& p) {
  p.assign(static_cast<size_t>(layout.total), 0.0f);
  std::mt19937_64 rng(seed);
  const float residual = 0.02f / std::sqrt(2.0f * s.n_layers);
  for (const ParamTensor* t : layout.All()) {
    float* w = p.data() + t->offset;
    if (!t->matrix) {
      std::fill_n(w, t->size(), 1.0f);
      continue;
    }
    const bool is_residual = t->name.find("attn_output") != std::string::npos ||
                             t->name.find("ffn_down") != std::string::npos;
    std::normal_distribution<float> dist(0.0f, is_residual ? residual : 0.02f);
    for (int64_t i = 0; i < t->size(); ++i) w[i] = dist(rng);
  }
}

struct LayerActs {
  std::vector<float> xn1, rstd1, q, k, v, att, ao, xmid, xn2, rstd2, gate, up, hsw;
};

struct StageActivations {
  std::vector<int32_t> tokens, targets;   // (BT)
  std::vector<std::vector<float>> x;      // n_local + 1 residual streams (BT, d): x[i] feeds layer l0+i
  std::vector<LayerActs> layers;
  std::vector<float> xnf, rstdf, dlogits; // last stage: (BT, d), (BT), (BT, V)
};

Stage::Stage(const ModelShape& shape, const ParamLayout& layout, int l0, int l1, bool first,
             bool last, int micro_batch, ThreadPool* pool)
    : shape_(shape), layout_(layout), l0_(l0), l1_(l1), first_(first), last_(last), B_(micro_batch),
      pool_(pool), rope_(MakeRopeTable(shape.seq_len, shape.head_dim(), shape.rope_theta, shape.rope_neox)) {
  const size_t BT = static_cast<size_t>(in_rows()), d = shape.d_model,
               qd = size_t(shape.n_heads) * shape.head_dim(), kvd = size_t(shape.n_kv_heads) * shape.head_dim(),
               ff = shape.d_ff;
  dx_.resize(BT * d);
  dxn_.resize(BT * d);
  dq_.resize(BT * qd);
  dk_.resize(BT * kvd);
  dv_.resize(BT * kvd);
  dao_.resize(BT * qd);
  dgate_.resize(BT * ff);
  dup_.resize(BT * ff);
  dh_.resize(BT * ff);
}

Stage::~Stage() = default;

int64_t Stage::act_floats() const {
  const int64_t BT = in_rows(), T = shape_.seq_len, d = shape_.d_model,
                qd = int64_t{shape_.n_heads} * shape_.head_dim(), kvd = int64_t{shape_.n_kv_heads} * shape_.head_dim(),
                ff = shape_.d_ff;
  const int64_t per_layer = BT * (4 * d + 2 * qd + 2 * kvd + 3 * ff + 2) + int64_t{B_} * shape_.n_heads * T * T;
  int64_t n = (l1_ - l0_) * per_layer + (l1_ - l0_ + 1) * BT * d;
  if (last_) n += BT * (d + 1 + shape_.n_vocab);
  return n;
}

StageActivations& Stage::Acquire(int slot) {
  auto& a = live_[slot];
  if (!a) {
    if (!free_.empty()) {
      a = std::move(free_.back());
      free_.pop_back();
    } else {
      a = std::make_unique<StageActivations>();
      const size_t BT = static_cast<size_t>(in_rows()), T = shape_.seq_len, d = shape_.d_model,
                   qd = size_t(shape_.n_heads) * shape_.head_dim(),
                   kvd = size_t(shape_.n_kv_heads) * shape_.head_dim(), ff = shape_.d_ff;
      a->tokens.resize(BT);
      a->targets.resize(BT);
      a->x.assign(l1_ - l0_ + 1, std::vector<float>(BT * d));
      a->layers.resize(l1_ - l0_);
      for (auto& L : a->layers) {
        L.xn1.resize(BT * d);
        L.rstd1.resize(BT);
        L.q.resize(BT * qd);
        L.k.resize(BT * kvd);
        L.v.resize(BT * kvd);
        L.att.resize(size_t(B_) * shape_.n_heads * T * T);
        L.ao.resize(BT * qd);
        L.xmid.resize(BT * d);
        L.xn2.resize(BT * d);
        L.rstd2.resize(BT);
        L.gate.resize(BT * ff);
        L.up.resize(BT * ff);
        L.hsw.resize(BT * ff);
      }
      if (last_) {
        a->xnf.resize(BT * d);
        a->rstdf.resize(BT);
        a->dlogits.resize(BT * shape_.n_vocab);
      }
    }
  }
  peak_in_flight_ = std::max(peak_in_flight_, static_cast<int>(live_.size()));
  return *a;
}

void Stage::Release(int slot) {
  auto it = live_.find(slot);
  if (it == live_.end()) return;
  free_.push_back(std::move(it->second));
  live_.erase(it);
}

void Stage::LayerForward(const float* p, int l, StageActivations& a, const float* x, float* out) {
  ThreadPool& pool = *pool_;
  const LayerParams& P = layout_.layers[l];
  LayerActs& A = a.layers[l - l0_];
  const int64_t BT = in_rows(), T = shape_.seq_len, B = B_, d = shape_.d_model, H = shape_.n_heads,
                KV = shape_.n_kv_heads, hd = shape_.head_dim(), qd = H * hd, kvd = KV * hd, ff = shape_.d_ff;
  // Attention block: xmid = x + Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
  RmsNormForward(pool, A.xn1.data(), A.rstd1.data(), x, p + P.attn_norm.offset, BT, d, shape_.rms_eps);
  MatMulForward(pool, A.q.data(), A.xn1.data(), p + P.wq.offset, BT, d, qd);   // (BT, qd)
  MatMulForward(pool, A.k.data(), A.xn1.data(), p + P.wk.offset, BT, d, kvd);  // (BT, kvd)
  MatMulForward(pool, A.v.data(), A.xn1.data(), p + P.wv.offset, BT, d, kvd);
  Rope(pool, A.q.data(), rope_, B, T, H, hd, false);
  Rope(pool, A.k.data(), rope_, B, T, KV, hd, false);
  AttentionForward(pool, A.ao.data(), A.att.data(), A.q.data(), A.k.data(), A.v.data(), B, T, H, KV, hd);
  MatMulForward(pool, A.xmid.data(), A.ao.data(), p + P.wo.offset, BT, qd, d);  // (BT, d)
  for (int64_t i = 0; i < BT * d; ++i) A.xmid[i] += x[i];
  // Feed-forward block: out = xmid + W_down·(silu(W_gate·n(xmid)) * W_up·n(xmid))
  RmsNormForward(pool, A.xn2.data(), A.rstd2.data(), A.xmid.data(), p + P.ffn_norm.offset, BT, d, shape_.rms_eps);
  MatMulForward(pool, A.gate.data(), A.xn2.data(), p + P.w_gate.offset, BT, d, ff);  // (BT, ff)
  MatMulForward(pool, A.up.data(), A.xn2.data(), p + P.w_up.offset, BT, d, ff);
  SwiGluForward(pool, A.hsw.data(), A.gate.data(), A.up.data(), BT * ff);
  MatMulForward(pool, out, A.hsw.data(), p + P.w_down.offset, BT, ff, d);  // (BT, d)
  for (int64_t i = 0; i < BT * d; ++i) out[i] += A.xmid[i];
}

// dx (BT, d): gradient of the layer's output on entry, of its input on return.
void Stage::LayerBackward(const float* p, float* g, int l, StageActivations& a, float* dx) {
  ThreadPool& pool = *pool_;
  const LayerParams& P = layout_.layers[l];
  LayerActs& A = a.layers[l - l0_];
  const float* x = a.x[l - l0_].data();
  const int64_t BT = in_rows(), T = shape_.seq_len, B = B_, d = shape_.d_model, H = shape_.n_heads,
                KV = shape_.n_kv_heads, hd = shape_.head_dim(), qd = H * hd, kvd = KV * hd, ff = shape_.d_ff;
  // Feed-forward block; the residual passes dx through unchanged to xmid.
  std::fill(dh_.begin(), dh_.end(), 0.0f);
  MatMulBackward(pool, dh_.data(), g + P.w_down.offset, dx, A.hsw.data(), p + P.w_down.offset, BT, ff, d);
  SwiGluBackward(pool, dgate_.data(), dup_.data(), dh_.data(), A.gate.data(), A.up.data(), BT * ff);
  std::fill(dxn_.begin(), dxn_.end(), 0.0f);
  MatMulBackward(pool, dxn_.data(), g + P.w_gate.offset, dgate_.data(), A.xn2.data(), p + P.w_gate.offset, BT, d, ff);
  MatMulBackward(pool, dxn_.data(), g + P.w_up.offset, dup_.data(), A.xn2.data(), p + P.w_up.offset, BT, d, ff);
  RmsNormBackward(pool, dx, g + P.ffn_norm.offset, dxn_.data(), A.xmid.data(), p + P.ffn_norm.offset, A.rstd2.data(), BT, d);
  // Attention block: dx now holds d(xmid).
  std::fill(dao_.begin(), dao_.end(), 0.0f);
  MatMulBackward(pool, dao_.data(), g + P.wo.offset, dx, A.ao.data(), p + P.wo.offset, BT, qd, d);
  AttentionBackward(pool, dq_.data(), dk_.data(), dv_.data(), dao_.data(), A.q.data(), A.k.data(), A.v.data(),
                    A.att.data(), B, T, H, KV, hd);
  Rope(pool, dq_.data(), rope_, B, T, H, hd, true);
  Rope(pool, dk_.data(), rope_, B, T, KV, hd, true);
  std::fill(dxn_.begin(), dxn_.end(), 0.0f);
  MatMulBackward(pool, dxn_.data(), g + P.wq.offset, dq_.data(), A.xn1.data(), p + P.wq.offset, BT, d, qd);
  MatMulBackward(pool, dxn_.data(), g + P.wk.offset, dk_.data(), A.xn1.data(), p + P.wk.offset, BT, d, kvd);
  MatMulBackward(pool, dxn_.data(), g + P.wv.offset, dv_.data(), A.xn1.data(), p + P.wv.offset, BT, d, kvd);
  RmsNormBackward(pool, dx, g + P.attn_norm.offset, dxn_.data(), x, p + P.attn_norm.offset, A.rstd1.data(), BT, d);
}

Status Stage::Forward(int slot, const float* p, const int32_t* tokens, const float* x_in,
                      const int32_t* targets, float loss_scale, float* x_out, LossSum* loss) {
  const int64_t BT = in_rows(), d = shape_.d_model, V = shape_.n_vocab;
  StageActivations& a = Acquire(slot);
  if (first_) {
    for (int64_t t = 0; t < BT; ++t) {
      if (tokens[t] < 0 || tokens[t] >= V) {
        Release(slot);
        return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", tokens[t], V - 1));
      }
    }
    std::copy_n(tokens, BT, a.tokens.begin());
    EmbeddingForward(*pool_, a.x[0].data(), tokens, p + layout_.token_embd.offset, BT, d);
  } else {
    std::copy_n(x_in, BT * d, a.x[0].begin());
  }
  for (int l = l0_; l < l1_; ++l) LayerForward(p, l, a, a.x[l - l0_].data(), a.x[l - l0_ + 1].data());
  const float* xf = a.x.back().data();
  if (!last_) {
    std::copy_n(xf, BT * d, x_out);
    return Status::Ok();
  }
  for (int64_t t = 0; t < BT; ++t) {
    if (targets[t] >= V) {
      Release(slot);
      return Status::InvalidArgument(fmt::format("target id {} is outside the vocabulary (0..{})", targets[t], V - 1));
    }
  }
  std::copy_n(targets, BT, a.targets.begin());
  RmsNormForward(*pool_, a.xnf.data(), a.rstdf.data(), xf, p + layout_.output_norm.offset, BT, d, shape_.rms_eps);
  MatMulForward(*pool_, a.dlogits.data(), a.xnf.data(), p + layout_.Head().offset, BT, d, V);  // logits (BT, V)
  if (capture_logits_) captured_logits_.assign(a.dlogits.begin(), a.dlogits.end());
  *loss = CrossEntropyForwardBackward(*pool_, a.dlogits.data(), a.targets.data(), BT, V, loss_scale);
  return Status::Ok();
}

Status Stage::Backward(int slot, const float* p, const float* dx_out, float* g, float* head_grad,
                       float* dx_in) {
  auto it = live_.find(slot);
  if (it == live_.end()) return Status::Internal(fmt::format("backward of micro-batch {} before its forward", slot));
  StageActivations& a = *it->second;
  const int64_t BT = in_rows(), d = shape_.d_model, V = shape_.n_vocab;
  if (last_) {
    // logits = n(x)·Headᵀ: dHead += dlogitsᵀ·n(x), d n(x) = dlogits·Head
    std::fill(dxn_.begin(), dxn_.end(), 0.0f);
    MatMulBackward(*pool_, dxn_.data(), head_grad, a.dlogits.data(), a.xnf.data(), p + layout_.Head().offset, BT, d, V);
    std::fill(dx_.begin(), dx_.end(), 0.0f);
    RmsNormBackward(*pool_, dx_.data(), g + layout_.output_norm.offset, dxn_.data(), a.x.back().data(),
                    p + layout_.output_norm.offset, a.rstdf.data(), BT, d);
  } else {
    std::copy_n(dx_out, BT * d, dx_.begin());
  }
  for (int l = l1_ - 1; l >= l0_; --l) LayerBackward(p, g, l, a, dx_.data());
  if (first_) {
    EmbeddingBackward(*pool_, g + layout_.token_embd.offset, dx_.data(), a.tokens.data(), BT, d);
  } else {
    std::copy_n(dx_.begin(), BT * d, dx_in);
  }
  Release(slot);
  return Status::Ok();
}

}  // namespace lms::train
