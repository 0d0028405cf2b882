// The trainer's ops (core/train/train_ops.h) on CUDA: forward and backward kernels on device
// memory, one TrainKernels per stream. Master weights and their gradients are fp32; so are
// activations in kF32, while in kBF16 ops also read and write the bf16 activations the stages
// keep (Activation, Output). Matrix products go through cuBLAS with fp32 inputs (kF32: the CPU
// trainer's arithmetic, for tests) or bf16 inputs (kBF16: mixed precision, the fast path) and
// always fp32 accumulation.
// Every reduction runs in a fixed order, so results do not depend on timing (no float atomics).
// Conventions follow core/train/train_ops.h: row-major, BT rows × C channels; backward functions
// ACCUMULATE into parameter gradients and into dinp unless the comment says "overwritten".
// All calls are asynchronous on the stream unless they say otherwise.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "core/train/optimizer.h"
#include "core/util/status.h"

namespace lms::gpu {
class OpTimes;
}

namespace lms::gpu::train {

enum class GemmPrecision { kF32, kBF16 };
const char* GemmPrecisionName(GemmPrecision p);

// A weight matrix (N, K) in fp32, with an optional bf16 copy of it (device, same shape) that
// kBF16 products read instead of converting the fp32 weights on every call.
struct Weight {
  const float* f32 = nullptr;
  const void* bf16 = nullptr;  // __nv_bfloat16*, or nullptr
};

// An op's input: fp32, or in kBF16 a bf16 copy, which products then read instead of converting
// (the stages keep many activations in bf16 alone). An fp32 pointer converts to it.
struct Activation {
  const float* f32 = nullptr;
  const void* bf16 = nullptr;  // __nv_bfloat16*, or nullptr
  Activation() = default;
  Activation(const float* p) : f32(p) {}  // NOLINT(google-explicit-constructor): an fp32 input
  Activation(const float* p, const void* b) : f32(p), bf16(b) {}
};

// An op's result: fp32, or in kBF16 bf16 alone where the op allows it (one of the two). An fp32
// pointer converts to it.
struct Output {
  float* f32 = nullptr;
  void* bf16 = nullptr;  // __nv_bfloat16*, or nullptr
  Output() = default;
  Output(float* p) : f32(p) {}  // NOLINT(google-explicit-constructor): an fp32 result
  static Output Bf16(void* p) {
    Output o;
    o.bf16 = p;
    return o;
  }
};

// The row strides of attention's q (and dq) and of its k and v (and dk, dv); 0: packed (H·hd,
// KV·hd). The stages keep q, k and v side by side in one product's (BT, (H + 2·KV)·hd) output.
struct QkvStrides {
  int64_t q = 0, kv = 0;
};

// Rows of `cols` elements `ld` apart (cols 0: one contiguous run).
struct RowLayout {
  int64_t cols = 0, ld = 0;
};

class TrainKernels {
 public:
  static Result<std::unique_ptr<TrainKernels>> Create(cudaStream_t stream, GemmPrecision precision);
  ~TrainKernels();
  TrainKernels(const TrainKernels&) = delete;
  TrainKernels& operator=(const TrainKernels&) = delete;

  cudaStream_t stream() const;
  // GPU time per op on this stream when LMS_CUDA_OP_TIMES=1 was set at creation; else nullptr.
  OpTimes* op_times() const;
  GemmPrecision precision() const;

  // dst (n bf16) = round-to-nearest-even(src (n fp32)).
  Status ToBf16(void* dst, const float* src, int64_t n);

  // out (BT,C) = wte[tokens[t]]; tokens on the device.
  Status EmbeddingForward(float* out, const int32_t* tokens, const float* wte, int64_t BT, int64_t C);
  // dwte (V,C) += scatter of dout (BT,C) by token. tokens_host: the same ids on the host; rows of
  // one token are summed in increasing t (the CPU's order), without atomics.
  Status EmbeddingBackward(float* dwte, const float* dout, const int32_t* tokens_host, int64_t BT, int64_t C);

  // out (BT,C) = inp * rstd * w; rstd (BT) saved. out16: the same in bf16 as well (or instead,
  // with out null).
  Status RmsNormForward(float* out, float* rstd, const float* inp, const float* w, int64_t BT, int64_t C, float eps,
                        void* out16 = nullptr);
  // The residual add and the norm after it in one pass: sum (BT,C) = inp + add (add in fp32, or
  // in bf16 as a product gives it), then RmsNormForward of sum.
  Status AddRmsNormForward(float* sum, float* out, float* rstd, const float* inp, Activation add, const float* w,
                           int64_t BT, int64_t C, float eps, void* out16 = nullptr);
  // dinp (BT,C) += ..., dw (C) += ...; dinp16: the updated dinp in bf16 as well (the copy the
  // next products read), or null.
  Status RmsNormBackward(float* dinp, float* dw, const float* dout, const float* inp, const float* w,
                         const float* rstd, int64_t BT, int64_t C, void* dinp16 = nullptr);

  // out (BT,N) = inp (BT,K) · w (N,K)ᵀ, overwritten.
  Status MatMulForward(float* out, const float* inp, Weight w, int64_t BT, int64_t K, int64_t N);
  // The same with the input given as an Activation (its bf16 copy alone serves in kBF16) and, in
  // kBF16, the output in bf16 if asked (rounded from the fp32 accumulation).
  Status MatMulForward(Output out, Activation inp, Weight w, int64_t BT, int64_t K, int64_t N);
  // dinp (BT,K) += dout (BT,N) · w (N,K) when dinp != nullptr; dw (N,K) += doutᵀ · inp.
  Status MatMulBackward(float* dinp, float* dw, const float* dout, const float* inp, Weight w, int64_t BT, int64_t K,
                        int64_t N);
  // The same with dout and inp as Activations (in kBF16 a bf16 copy alone serves: the loss's and
  // SwiGLU's gradients come that way); accumulate false: dinp overwritten, not added to. A bf16
  // dinp (kBF16) is always overwritten, so it needs accumulate false.
  Status MatMulBackward(Output dinp, float* dw, Activation dout, Activation inp, Weight w, int64_t BT, int64_t K,
                        int64_t N, bool accumulate = true);

  // x (B*T, H*hd) rotated in place with the tables of core's MakeRopeTable uploaded to the device:
  // cos, sin (T, hd/2). neox: pairs (i, i+hd/2), else (2i, 2i+1). inverse: the transpose (backward).
  // x in fp32 or bf16 (rotated in fp32 and rounded back); ld: x's row stride (0: H·hd).
  Status Rope(Output x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H, int64_t hd, bool neox,
              bool inverse, int64_t ld = 0);

  // Causal grouped-query attention, scale 1/sqrt(hd). q (BT, H*hd), k and v (BT, KV*hd), out
  // (BT, H*hd) overwritten, att (B, H, T, T) the saved softmax probabilities (upper triangle 0).
  // q, k, v (and in the backward dq, dk, dv) with the row strides ld.
  Status AttentionForward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B,
                          int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld = {});
  // dq, dk, dv overwritten.
  Status AttentionBackward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                           const float* v, const float* att, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd,
                           QkvStrides ld = {});

  // The same attention without the T×T probabilities, in the manner of FlashAttention-2: bf16
  // tensor-core products with the softmax and accumulation in fp32 (sm_80 and later). lse2
  // (B, H, T) is each query row's log-sum-exp of the scaled scores in base 2, saved for the
  // backward. For head dims where FlashAttentionSupports; q, k, v, out 16-byte aligned. The
  // operands (q, k, v, out, and in the backward dout, dq, dk, dv) are all fp32 or all bf16 (the
  // products round fp32 operands to bf16 anyway; kBF16 stages keep them in bf16 alone).
  static bool FlashAttentionSupports(int64_t hd);
  Status FlashAttentionForward(Output out, float* lse2, Activation q, Activation k, Activation v, int64_t B,
                               int64_t T, int64_t H, int64_t KV, int64_t hd, QkvStrides ld = {});
  // dq, dk, dv overwritten; out and lse2 from the forward. Deterministic (no atomics).
  Status FlashAttentionBackward(Output dq, Output dk, Output dv, Activation dout, Activation q, Activation k,
                                Activation v, Activation out, const float* lse2, int64_t B, int64_t T, int64_t H,
                                int64_t KV, int64_t hd, QkvStrides ld = {});

  // out (n) = silu(gate) * up (out16: in bf16 as well, or instead with out null); backward:
  // dgate, dup overwritten (dgate16, dup16: in bf16 instead, with dgate and dup null). gate and
  // up are both fp32 or both bf16 (kBF16 stages keep them so); dout either. With layout.cols > 0,
  // gate, up, dgate and dup are rows of cols elements layout.ld apart while out and dout stay
  // contiguous: the stages keep gate and up side by side in one (BT, 2·ff) product output.
  Status SwiGluForward(float* out, Activation gate, Activation up, int64_t n, void* out16 = nullptr,
                       RowLayout layout = {});
  Status SwiGluBackward(float* dgate, float* dup, Activation dout, Activation gate, Activation up, int64_t n,
                        void* dgate16 = nullptr, void* dup16 = nullptr, RowLayout layout = {});

  // out (n) = x (n) + y (n), y in fp32 or bf16; out may be x.
  Status Add(float* out, const float* x, Activation y, int64_t n);

  // Softmax cross-entropy of logits (BT,V) against targets (BT, device; < 0 ignored). Writes
  // dlogits = (softmax − onehot)·grad_scale into logits in place (ignored rows: 0), or, when
  // dlogits16 is given, as bf16 there (BT,V) with logits left as they were; and ADDS the sum of
  // the counted rows' losses to *loss_sum and their number to *count (device scalars).
  Status CrossEntropyForwardBackward(float* logits, const int32_t* targets, int64_t BT, int64_t V, float grad_scale,
                                     double* loss_sum, int64_t* count, void* dlogits16 = nullptr);
  // The same on bf16 logits (BT,V), the gradient written over them in bf16 (kBF16 stages: the
  // head's product writes its logits in bf16, as autocast does).
  Status CrossEntropyForwardBackwardBf16(void* logits16, const int32_t* targets, int64_t BT, int64_t V,
                                         float grad_scale, double* loss_sum, int64_t* count);

  // *out (device) = Σ g² in double, overwritten.
  Status SumSquares(const float* g, int64_t n, double* out);
  // The AdamW update of core's AdamW::Step (avx2::AdamWUpdate) on n elements: g *= clip, moments,
  // bias correction, decoupled decay where decay[i] != 0.
  Status AdamW(const lms::train::AdamWScalars& s, float* p, float* g, float* m, float* v, const uint8_t* decay,
               int64_t n);

  struct Impl;  // the state behind the ops (gpu/train/train_kernels_impl.h)

 private:
  explicit TrainKernels(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lms::gpu::train
