#include "gpu/train/cuda_stage.h"

#include <cuda_bf16.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <utility>

#include "core/tensor/fp16.h"

namespace lms::gpu::train {

using lms::train::LayerParams;
using lms::train::ParamTensor;

namespace {

// Tensors of a layer that the stage multiplies as one matrix: each pair (a, b) must have b right
// after a.
std::array<std::pair<const ParamTensor*, const ParamTensor*>, 3> AdjacentPairs(const LayerParams& L) {
  return {{{&L.wq, &L.wk}, {&L.wk, &L.wv}, {&L.w_gate, &L.w_up}}};
}

}  // namespace

bool UseFlashAttention(GemmPrecision precision, const lms::train::ModelShape& shape, int micro_batch) {
  const char* env = std::getenv("LMS_CUDA_ATTENTION");
  const bool materialized = env != nullptr && std::string_view(env) == "materialized";
  const int64_t pairs = int64_t{micro_batch} * std::max(shape.n_heads, shape.n_kv_heads);  // grid rows
  return precision == GemmPrecision::kBF16 && TrainKernels::FlashAttentionSupports(shape.head_dim()) &&
         pairs <= 65535 && !materialized;
}

struct CudaStage::Slot {
  int owner = -1;                       // the micro-batch using it, or -1
  std::vector<int32_t> tokens_host;     // (BT): the embedding's backward sorts by token on the host
  DeviceBuffer<int32_t> tokens, targets;
  std::vector<DeviceBuffer<float>> x;   // n_local + 1 residual streams (BT, d)
  struct Layer {
    DeviceBuffer<float> rstd1, att, xmid, rstd2;
    // In kBF16 in bf16 alone: the normed inputs, SwiGLU's inputs and its output (products and
    // SwiGLU are all that read them) and, with flash attention, q, k, v and the attention's
    // output (products, RoPE and the flash kernels are all that read them). Products of
    // matrices adjacent in the parameter layout lie side by side: qkv = q, k, v, (BT, qd + 2·kvd),
    // from [Wq; Wk; Wv]; gu = gate, up, (BT, 2·ff), from [W_gate; W_up].
    ActBuffer xn1, xn2, qkv, ao, gu, hsw;
  };
  std::vector<Layer> layers;
  // Last chunk: the final norm's output (bf16 alone in kBF16: the head's products read it), and
  // the logits, then the loss's gradient over them.
  DeviceBuffer<float> rstdf;
  ActBuffer xnf, dlogits;
};

Result<std::unique_ptr<CudaStage>> CudaStage::Create(const lms::train::ModelShape& shape,
                                                     const lms::train::ParamLayout& layout, int l0, int l1, bool first,
                                                     bool last, int micro_batch, int slots, TrainKernels* kernels) {
  if (l1 <= l0 || micro_batch < 1 || slots < 1) return Status::InvalidArgument("a CUDA stage needs layers, a micro-batch and a slot");
  for (int l = l0; l < l1; ++l) {  // the fused products rely on it
    const LayerParams& L = layout.layers[static_cast<size_t>(l)];
    for (const auto& [a, b] : AdjacentPairs(L)) {
      if (b->offset != a->offset + a->size()) {
        return Status::Internal(fmt::format("{} does not follow {} in the parameter layout", b->name, a->name));
      }
    }
  }
  std::unique_ptr<CudaStage> s(new CudaStage());
  s->shape_ = shape;
  s->layout_ = &layout;
  s->l0_ = l0;
  s->l1_ = l1;
  s->first_ = first;
  s->last_ = last;
  s->B_ = micro_batch;
  s->k_ = kernels;
  const int64_t BT = int64_t{micro_batch} * shape.seq_len, T = shape.seq_len, d = shape.d_model,
                qd = int64_t{shape.n_heads} * shape.head_dim(), kvd = int64_t{shape.n_kv_heads} * shape.head_dim(),
                ff = shape.d_ff, V = shape.n_vocab;
  s->rows_ = BT;
  s->flash_ = UseFlashAttention(kernels->precision(), shape, micro_batch);
  s->bf16_ = kernels->precision() == GemmPrecision::kBF16;
  s->attn16_ = s->bf16_ && s->flash_;
  const lms::train::RopeTable rt = lms::train::MakeRopeTable(T, shape.head_dim(), shape.rope_theta, shape.rope_neox);
  LMS_RETURN_IF_ERROR(s->rope_cos_.Allocate(static_cast<int64_t>(rt.cos.size()), "rope table"));
  LMS_RETURN_IF_ERROR(s->rope_sin_.Allocate(static_cast<int64_t>(rt.sin.size()), "rope table"));
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(s->rope_cos_.get(), rt.cos.data(), s->rope_cos_.bytes(), cudaMemcpyHostToDevice));
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpy(s->rope_sin_.get(), rt.sin.data(), s->rope_sin_.bytes(), cudaMemcpyHostToDevice));

  int64_t bytes = 0;
  auto alloc = [&bytes](auto& buf, int64_t n, const char* what) {
    bytes += n * static_cast<int64_t>(sizeof(*buf.get()));
    return buf.Allocate(n, what);
  };
  // One buffer of a pair: in kBF16 the bf16 one, else the fp32 one.
  auto alloc_one = [&](ActBuffer& b, int64_t n, const char* what) {
    return s->bf16_ ? alloc(b.bf16, n, what) : alloc(b.f32, n, what);
  };
  // The attention's operands and their gradients: bf16 alone where flash attention runs in kBF16.
  auto alloc_attn = [&](ActBuffer& b, int64_t n, const char* what) {
    return s->attn16_ ? alloc(b.bf16, n, what) : alloc(b.f32, n, what);
  };
  for (auto* b : {&s->dx_, &s->dxn_}) LMS_RETURN_IF_ERROR(alloc(*b, BT * d, "training scratch"));
  LMS_RETURN_IF_ERROR(alloc_attn(s->dao_, BT * qd, "training scratch"));
  LMS_RETURN_IF_ERROR(alloc_attn(s->dqkv_, BT * (qd + 2 * kvd), "training scratch"));
  // SwiGLU's gradients are read only by SwiGLU and the products: bf16 alone in kBF16.
  LMS_RETURN_IF_ERROR(alloc_one(s->dh_, BT * ff, "training scratch"));
  LMS_RETURN_IF_ERROR(alloc_one(s->proj_, BT * d, "training scratch"));
  if (s->bf16_) LMS_RETURN_IF_ERROR(alloc(s->dx16_, BT * d, "training scratch"));
  LMS_RETURN_IF_ERROR(alloc_one(s->dgu_, BT * 2 * ff, "training scratch"));

  for (int i = 0; i < slots; ++i) {
    auto a = std::make_unique<Slot>();
    const char* what = "training activations";
    a->tokens_host.resize(static_cast<size_t>(BT));
    LMS_RETURN_IF_ERROR(alloc(a->tokens, BT, what));
    LMS_RETURN_IF_ERROR(alloc(a->targets, BT, what));
    a->x.resize(static_cast<size_t>(l1 - l0 + 1));
    for (auto& x : a->x) LMS_RETURN_IF_ERROR(alloc(x, BT * d, what));
    a->layers.resize(static_cast<size_t>(l1 - l0));
    for (auto& L : a->layers) {
      LMS_RETURN_IF_ERROR(alloc(L.xmid, BT * d, what));
      LMS_RETURN_IF_ERROR(alloc_one(L.xn1, BT * d, what));
      LMS_RETURN_IF_ERROR(alloc_one(L.xn2, BT * d, what));
      LMS_RETURN_IF_ERROR(alloc_one(L.gu, BT * 2 * ff, what));
      LMS_RETURN_IF_ERROR(alloc_one(L.hsw, BT * ff, what));
      for (auto* b : {&L.rstd1, &L.rstd2}) LMS_RETURN_IF_ERROR(alloc(*b, BT, what));
      LMS_RETURN_IF_ERROR(alloc_attn(L.qkv, BT * (qd + 2 * kvd), what));
      LMS_RETURN_IF_ERROR(alloc_attn(L.ao, BT * qd, what));
      // The probabilities (B, H, T, T), or with flash attention the rows' log-sum-exp (B, H, T).
      LMS_RETURN_IF_ERROR(alloc(L.att, int64_t{micro_batch} * shape.n_heads * T * (s->flash_ ? 1 : T), what));
    }
    if (last) {
      LMS_RETURN_IF_ERROR(alloc_one(a->xnf, BT * d, what));
      LMS_RETURN_IF_ERROR(alloc(a->rstdf, BT, what));
      LMS_RETURN_IF_ERROR(alloc_one(a->dlogits, BT * V, what));
    }
    s->slots_.push_back(std::move(a));
  }
  s->act_bytes_ = bytes;
  return s;
}

CudaStage::~CudaStage() = default;

CudaStage::Slot* CudaStage::Acquire(int slot) {
  for (auto& a : slots_)
    if (a->owner == slot) return a.get();
  for (auto& a : slots_) {
    if (a->owner < 0) {
      a->owner = slot;
      return a.get();
    }
  }
  return nullptr;
}

void CudaStage::Release(int slot) {
  for (auto& a : slots_)
    if (a->owner == slot) a->owner = -1;
}

const ParamSegment* DeviceParams::Find(const ParamTensor& t) const {
  for (const ParamSegment& s : segments) {
    if (t.offset >= s.begin && t.offset + t.size() <= s.end) return &s;
  }
  return nullptr;
}

const float* DeviceParams::p(const ParamTensor& t) const {
  const ParamSegment* s = Find(t);
  return s ? s->p + (t.offset - s->begin) : nullptr;
}

const void* DeviceParams::bf16(const ParamTensor& t) const {
  const ParamSegment* s = Find(t);
  return s && s->p_bf16 ? static_cast<const __nv_bfloat16*>(s->p_bf16) + (t.offset - s->begin) : nullptr;
}

float* DeviceParams::g(const ParamTensor& t) const {
  const ParamSegment* s = Find(t);
  return s && s->g ? s->g + (t.offset - s->begin) : nullptr;
}

Status CudaStage::CheckParams(const DeviceParams& P) const {
  const auto [own_begin, own_end] = layout_->StageRange(l0_, l1_, first_, last_);
  std::vector<const ParamTensor*> used;
  if (first_) used.push_back(&layout_->token_embd);
  for (int l = l0_; l < l1_; ++l) {
    const LayerParams& L = layout_->layers[static_cast<size_t>(l)];
    for (const ParamTensor* t : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_norm, &L.w_gate, &L.w_up, &L.w_down}) {
      used.push_back(t);
    }
  }
  if (last_) {
    used.push_back(&layout_->output_norm);
    used.push_back(&layout_->Head());
  }
  for (const ParamTensor* t : used) {
    const bool owned = t->offset >= own_begin && t->offset + t->size() <= own_end;
    if (!P.p(*t) || (owned && !P.g(*t))) {
      return Status::Internal(fmt::format("chunk of layers [{}, {}): parameter {} is not on its GPU", l0_, l1_, t->name));
    }
  }
  // The fused products read [Wq; Wk; Wv] and [W_gate; W_up], and write their gradients, as one
  // matrix each: adjacent on the GPU too.
  for (int l = l0_; l < l1_; ++l) {
    for (const auto& [a, b] : AdjacentPairs(layout_->layers[static_cast<size_t>(l)])) {
      const int64_t n = a->size();
      const auto* a16 = static_cast<const __nv_bfloat16*>(P.bf16(*a));
      const bool adjacent = P.p(*b) == P.p(*a) + n && P.g(*b) == (P.g(*a) ? P.g(*a) + n : nullptr) &&
                            P.bf16(*b) == (a16 ? a16 + n : nullptr);
      if (!adjacent) return Status::Internal(fmt::format("{} and {} are not adjacent on their GPU", a->name, b->name));
    }
  }
  return Status::Ok();
}

Weight CudaStage::W(const DeviceParams& P, const ParamTensor& t) const {
  Weight w;
  w.f32 = P.p(t);
  w.bf16 = static_cast<const __nv_bfloat16*>(P.bf16(t));
  return w;
}

Status CudaStage::LayerForward(const DeviceParams& P, int l, Slot& a) {
  const LayerParams& W_ = layout_->layers[l];
  auto& A = a.layers[static_cast<size_t>(l - l0_)];
  const float* x = a.x[static_cast<size_t>(l - l0_)].get();
  float* out = a.x[static_cast<size_t>(l - l0_ + 1)].get();
  const int64_t BT = rows_, T = shape_.seq_len, B = B_, d = shape_.d_model, H = shape_.n_heads,
                KV = shape_.n_kv_heads, hd = shape_.head_dim(), qd = H * hd, kvd = KV * hd, ff = shape_.d_ff;
  TrainKernels& k = *k_;
  // Attention block: xmid = x + Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
  const Activation xn1 = A.xn1.in(), xn2 = A.xn2.in();
  // The stage's later layers find n(x) written already: the layer before ends with its residual
  // add and this norm in one pass (below).
  if (l == l0_) {
    LMS_RETURN_IF_ERROR(k.RmsNormForward(A.xn1.f32.get(), A.rstd1.get(), x, P.p(W_.attn_norm), BT, d,
                                         shape_.rms_eps, A.xn1.bf16.get()));
  }
  // One product for q, k and v; one RoPE launch for the H + KV heads of q and k, which lie side
  // by side in each row.
  const int64_t qkvd = qd + 2 * kvd;
  const QkvStrides ld{qkvd, qkvd};
  LMS_RETURN_IF_ERROR(k.MatMulForward(A.qkv.out(), xn1, W(P, W_.wq), BT, d, qkvd));
  LMS_RETURN_IF_ERROR(
      k.Rope(A.qkv.out(), rope_cos_.get(), rope_sin_.get(), B, T, H + KV, hd, shape_.rope_neox, false, qkvd));
  if (flash_) {
    LMS_RETURN_IF_ERROR(k.FlashAttentionForward(A.ao.out(), A.att.get(), A.qkv.in(), A.qkv.in(qd),
                                                A.qkv.in(qd + kvd), B, T, H, KV, hd, ld));
  } else {
    const float* qkv = A.qkv.f32.get();
    LMS_RETURN_IF_ERROR(
        k.AttentionForward(A.ao.f32.get(), A.att.get(), qkv, qkv + qd, qkv + qd + kvd, B, T, H, KV, hd, ld));
  }
  // The projections come in bf16 in kBF16 (as under autocast) and are added to the fp32
  // residual stream; the attention block's sum and the norm after it are one pass.
  LMS_RETURN_IF_ERROR(k.MatMulForward(proj_.out(), A.ao.in(), W(P, W_.wo), BT, qd, d));
  LMS_RETURN_IF_ERROR(k.AddRmsNormForward(A.xmid.get(), A.xn2.f32.get(), A.rstd2.get(), x, proj_.in(),
                                          P.p(W_.ffn_norm), BT, d, shape_.rms_eps, A.xn2.bf16.get()));
  // Feed-forward block: out = xmid + W_down·(silu(W_gate·n(xmid)) * W_up·n(xmid))
  const RowLayout halves{ff, 2 * ff};  // gate and up in one row of gu
  LMS_RETURN_IF_ERROR(k.MatMulForward(A.gu.out(), xn2, W(P, W_.w_gate), BT, d, 2 * ff));
  LMS_RETURN_IF_ERROR(
      k.SwiGluForward(A.hsw.f32.get(), A.gu.in(), A.gu.in(ff), BT * ff, A.hsw.bf16.get(), halves));
  LMS_RETURN_IF_ERROR(k.MatMulForward(proj_.out(), A.hsw.in(), W(P, W_.w_down), BT, ff, d));
  // The residual add, with the norm that reads its sum when that is this stage's: the next
  // layer's attention norm, or the final norm after the last layer.
  if (l + 1 < l1_) {
    auto& N = a.layers[static_cast<size_t>(l - l0_ + 1)];
    return k.AddRmsNormForward(out, N.xn1.f32.get(), N.rstd1.get(), A.xmid.get(), proj_.in(),
                               P.p(layout_->layers[l + 1].attn_norm), BT, d, shape_.rms_eps, N.xn1.bf16.get());
  }
  if (last_) {
    return k.AddRmsNormForward(out, a.xnf.f32.get(), a.rstdf.get(), A.xmid.get(), proj_.in(),
                               P.p(layout_->output_norm), BT, d, shape_.rms_eps, a.xnf.bf16.get());
  }
  return k.Add(out, A.xmid.get(), proj_.in(), BT * d);
}

Status CudaStage::LayerBackward(const DeviceParams& P, int l, Slot& a, float* dx, bool dx16_fresh) {
  const LayerParams& W_ = layout_->layers[l];
  auto& A = a.layers[static_cast<size_t>(l - l0_)];
  const float* x = a.x[static_cast<size_t>(l - l0_)].get();
  const int64_t BT = rows_, T = shape_.seq_len, B = B_, d = shape_.d_model, H = shape_.n_heads,
                KV = shape_.n_kv_heads, hd = shape_.head_dim(), qd = H * hd, kvd = KV * hd, ff = shape_.d_ff;
  TrainKernels& k = *k_;
  const Activation xn1 = A.xn1.in(), xn2 = A.xn2.in();
  // Feed-forward block; the residual passes dx through unchanged to xmid.
  // Scratch gradients are overwritten by their first product (accumulate false), not zeroed.
  // dx as the products read it: with its bf16 copy where the last norm backward wrote one.
  const Activation dxa{dx, dx16_fresh ? dx16_.get() : nullptr}, dxa16{dx, dx16_.get()};
  LMS_RETURN_IF_ERROR(k.MatMulBackward(dh_.out(), P.g(W_.w_down), dxa, A.hsw.in(), W(P, W_.w_down), BT, ff, d, false));
  const RowLayout halves{ff, 2 * ff};
  const Output dg = dgu_.out(), du = dgu_.out(ff);
  LMS_RETURN_IF_ERROR(k.SwiGluBackward(dg.f32, du.f32, dh_.in(), A.gu.in(), A.gu.in(ff), BT * ff, dg.bf16, du.bf16,
                                       halves));
  // [W_gate; W_up] and their gradients are adjacent too: one product for both.
  LMS_RETURN_IF_ERROR(
      k.MatMulBackward(dxn_.get(), P.g(W_.w_gate), dgu_.in(), xn2, W(P, W_.w_gate), BT, d, 2 * ff, false));
  LMS_RETURN_IF_ERROR(k.RmsNormBackward(dx, P.g(W_.ffn_norm), dxn_.get(), A.xmid.get(), P.p(W_.ffn_norm),
                                        A.rstd2.get(), BT, d, dx16_.get()));
  // Attention block: dx now holds d(xmid).
  LMS_RETURN_IF_ERROR(k.MatMulBackward(dao_.out(), P.g(W_.wo), dxa16, A.ao.in(), W(P, W_.wo), BT, qd, d, false));
  // dq, dk, dv side by side in dqkv_, as q, k, v in qkv.
  const int64_t qkvd = qd + 2 * kvd;
  const QkvStrides ld{qkvd, qkvd};
  if (flash_) {
    LMS_RETURN_IF_ERROR(k.FlashAttentionBackward(dqkv_.out(), dqkv_.out(qd), dqkv_.out(qd + kvd), dao_.in(),
                                                 A.qkv.in(), A.qkv.in(qd), A.qkv.in(qd + kvd), A.ao.in(), A.att.get(),
                                                 B, T, H, KV, hd, ld));
  } else {
    const float* qkv = A.qkv.f32.get();
    float* dqkv = dqkv_.f32.get();
    LMS_RETURN_IF_ERROR(k.AttentionBackward(dqkv, dqkv + qd, dqkv + qd + kvd, dao_.f32.get(), qkv, qkv + qd,
                                            qkv + qd + kvd, A.att.get(), B, T, H, KV, hd, ld));
  }
  LMS_RETURN_IF_ERROR(
      k.Rope(dqkv_.out(), rope_cos_.get(), rope_sin_.get(), B, T, H + KV, hd, shape_.rope_neox, true, qkvd));
  LMS_RETURN_IF_ERROR(k.MatMulBackward(dxn_.get(), P.g(W_.wq), dqkv_.in(), xn1, W(P, W_.wq), BT, d, qkvd, false));
  return k.RmsNormBackward(dx, P.g(W_.attn_norm), dxn_.get(), x, P.p(W_.attn_norm), A.rstd1.get(), BT, d,
                           dx16_.get());
}

Status CudaStage::Forward(int slot, const DeviceParams& P, const int32_t* tokens, const float* x_in,
                          const int32_t* targets, float loss_scale, float* x_out, double* loss_sum, int64_t* loss_count) {
  const int64_t BT = rows_, d = shape_.d_model, V = shape_.n_vocab;
  const cudaStream_t s = k_->stream();
  Slot* a = Acquire(slot);
  if (!a) return Status::Internal(fmt::format("micro-batch {}: every activation slot of the stage is in use", slot));
  if (first_) {
    for (int64_t t = 0; t < BT; ++t) {
      if (tokens[t] < 0 || tokens[t] >= V) {
        Release(slot);
        return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary (0..{})", tokens[t], V - 1));
      }
    }
    std::copy_n(tokens, BT, a->tokens_host.begin());
    // Synchronous from pageable memory, so the caller's array may change once this returns.
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(a->tokens.get(), tokens, a->tokens.bytes(), cudaMemcpyHostToDevice, s));
    LMS_RETURN_IF_ERROR(k_->EmbeddingForward(a->x[0].get(), a->tokens.get(), P.p(layout_->token_embd), BT, d));
  } else {
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(a->x[0].get(), x_in, a->x[0].bytes(), cudaMemcpyDeviceToDevice, s));
  }
  for (int l = l0_; l < l1_; ++l) LMS_RETURN_IF_ERROR(LayerForward(P, l, *a));
  const float* xf = a->x.back().get();
  if (!last_) {
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(x_out, xf, a->x.back().bytes(), cudaMemcpyDeviceToDevice, s));
    return Status::Ok();
  }
  for (int64_t t = 0; t < BT; ++t) {
    if (targets[t] >= V) {
      Release(slot);
      return Status::InvalidArgument(fmt::format("target id {} is outside the vocabulary (0..{})", targets[t], V - 1));
    }
  }
  LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(a->targets.get(), targets, a->targets.bytes(), cudaMemcpyHostToDevice, s));
  if (l1_ == l0_) {  // else the last layer's residual add wrote the final norm too
    LMS_RETURN_IF_ERROR(k_->RmsNormForward(a->xnf.f32.get(), a->rstdf.get(), xf, P.p(layout_->output_norm), BT, d,
                                           shape_.rms_eps, a->xnf.bf16.get()));
  }
  // The logits (in bf16 in kBF16, as autocast gives them), then the loss's gradient over them.
  LMS_RETURN_IF_ERROR(k_->MatMulForward(a->dlogits.out(), a->xnf.in(), W(P, layout_->Head()), BT, d, V));
  if (capture_) LMS_RETURN_IF_ERROR(CaptureLogits(*a));
  if (bf16_) {
    return k_->CrossEntropyForwardBackwardBf16(a->dlogits.bf16.get(), a->targets.get(), BT, V, loss_scale, loss_sum,
                                               loss_count);
  }
  return k_->CrossEntropyForwardBackward(a->dlogits.f32.get(), a->targets.get(), BT, V, loss_scale, loss_sum,
                                         loss_count);
}

Status CudaStage::CaptureLogits(const Slot& a) {
  const cudaStream_t s = k_->stream();
  const size_t n = static_cast<size_t>(rows_ * shape_.n_vocab);
  captured_.resize(n);
  if (bf16_) {
    std::vector<uint16_t> bits(n);
    LMS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(bits.data(), a.dlogits.bf16.get(), n * sizeof(uint16_t), cudaMemcpyDeviceToHost, s));
    LMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s));
    for (size_t i = 0; i < n; ++i) captured_[i] = Bf16ToFp32(bits[i]);
    return Status::Ok();
  }
  LMS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(captured_.data(), a.dlogits.f32.get(), n * sizeof(float), cudaMemcpyDeviceToHost, s));
  return CudaStatus(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

Status CudaStage::Backward(int slot, const DeviceParams& P, const float* dx_out, float* head_grad, float* dx_in) {
  Slot* a = nullptr;
  for (auto& s : slots_)
    if (s->owner == slot) a = s.get();
  if (!a) return Status::Internal(fmt::format("backward of micro-batch {} before its forward", slot));
  const int64_t BT = rows_, d = shape_.d_model, V = shape_.n_vocab;
  const cudaStream_t s = k_->stream();
  if (last_) {
    // logits = n(x)·Headᵀ: dHead += dlogitsᵀ·n(x), d n(x) = dlogits·Head
    LMS_RETURN_IF_ERROR(k_->MatMulBackward(dxn_.get(), head_grad, a->dlogits.in(), a->xnf.in(), W(P, layout_->Head()),
                                           BT, d, V, false));
    LMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dx_.get(), 0, dx_.bytes(), s));
    LMS_RETURN_IF_ERROR(k_->RmsNormBackward(dx_.get(), P.g(layout_->output_norm), dxn_.get(), a->x.back().get(),
                                            P.p(layout_->output_norm), a->rstdf.get(), BT, d, dx16_.get()));
  } else {
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dx_.get(), dx_out, dx_.bytes(), cudaMemcpyDeviceToDevice, s));
  }
  // Every norm backward also writes dx's bf16 copy (kBF16); one handed over by the next chunk
  // has none yet.
  for (int l = l1_ - 1; l >= l0_; --l) LMS_RETURN_IF_ERROR(LayerBackward(P, l, *a, dx_.get(), last_ || l < l1_ - 1));
  if (first_) {
    LMS_RETURN_IF_ERROR(k_->EmbeddingBackward(P.g(layout_->token_embd), dx_.get(), a->tokens_host.data(), BT, d));
  } else {
    LMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dx_in, dx_.get(), dx_.bytes(), cudaMemcpyDeviceToDevice, s));
  }
  Release(slot);
  return Status::Ok();
}

}  // namespace lms::gpu::train
