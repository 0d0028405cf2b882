// A Llama-style transformer for training in fp32: its shape, where each parameter lives in one
// flat vector, seeded initialisation, and a Stage — a contiguous range of layers (with the
// embedding on the first stage and the final norm, head and loss on the last) that runs
// forward and backward per micro-batch and keeps the activations backward needs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/train/train_ops.h"
#include "core/util/status.h"
#include "core/util/thread_pool.h"

namespace lms::train {

struct ModelShape {
  int32_t n_layers = 2;
  int32_t d_model = 64;
  int32_t n_heads = 4;
  int32_t n_kv_heads = 2;
  int32_t d_ff = 128;
  int32_t n_vocab = 256;
  int32_t seq_len = 64;        // tokens per training sequence (T)
  float rope_theta = 10000.0f;
  bool rope_neox = false;      // llama: pairs (2i, 2i+1), as the serving forward pass
  float rms_eps = 1e-5f;
  bool tied = true;            // the head reuses token_embd (no output.weight)

  int32_t head_dim() const { return d_model / n_heads; }
  Status Validate() const;
  std::string Summary() const;
};

// One parameter tensor: GGUF name, offset into the flat vector, shape (rows, cols).
struct ParamTensor {
  std::string name;
  int64_t offset = 0;
  int64_t rows = 1, cols = 0;
  bool matrix = false;          // 2-D: gets weight decay
  int64_t size() const { return rows * cols; }
};

struct LayerParams {
  ParamTensor attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

// Layout: token_embd, blk.0 …, blk.L-1, output_norm, [output]. A stage's parameters other than
// the tied head are one contiguous range.
struct ParamLayout {
  ParamTensor token_embd, output_norm, output;  // output.size()==0 when tied
  std::vector<LayerParams> layers;
  int64_t total = 0;

  static ParamLayout For(const ModelShape& s);
  std::vector<const ParamTensor*> All() const;
  const ParamTensor& Head() const { return output.size() ? output : token_embd; }
  // [begin, end) of the flat vector that a stage owns (layers [l0, l1), embedding if first,
  // output_norm and an untied output if last).
  std::pair<int64_t, int64_t> StageRange(int l0, int l1, bool first, bool last) const;
};

// Seeded initialisation: N(0, 0.02) for matrices, 0.02/sqrt(2L) for the residual projections
// (wo, w_down), 1 for norm weights.
void InitParams(const ModelShape& s, const ParamLayout& layout, uint64_t seed, std::vector<float>& p);

// Activations of one micro-batch kept between its forward and its backward.
struct StageActivations;

class Stage {
 public:
  // Layers [l0, l1); `first` holds the embedding, `last` the final norm, head and loss.
  // B sequences of shape.seq_len tokens per micro-batch.
  Stage(const ModelShape& shape, const ParamLayout& layout, int l0, int l1, bool first, bool last,
        int micro_batch, ThreadPool* pool);
  ~Stage();

  int64_t act_floats() const;   // floats of activations one in-flight micro-batch holds
  int64_t in_rows() const { return int64_t{B_} * shape_.seq_len; }

  // Forward of micro-batch `slot`. First stage reads tokens (B,T), others x_in (B*T, d).
  // Non-last stages write x_out (B*T, d). The last stage computes the loss against targets
  // (B,T) (target < 0 is ignored) and stores dlogits scaled by loss_scale for Backward.
  Status Forward(int slot, const float* params, const int32_t* tokens, const float* x_in,
                 const int32_t* targets, float loss_scale, float* x_out, LossSum* loss);
  // Backward of micro-batch `slot`; releases its activations. dx_out (B*T, d) from the next
  // stage (unused on the last). Accumulates into grads (the flat gradient vector, this stage's
  // range) and the tied head gradient into head_grad (V, d) (may alias grads' token_embd).
  // Writes dx_in (B*T, d) unless first.
  Status Backward(int slot, const float* params, const float* dx_out, float* grads,
                  float* head_grad, float* dx_in);
  // Drops a slot without backward (evaluation).
  void Release(int slot);

  // Keeps a copy of the logits of each forward (tests compare them with a reference).
  void set_capture_logits(bool on) { capture_logits_ = on; }
  const std::vector<float>& captured_logits() const { return captured_logits_; }
  int peak_in_flight() const { return peak_in_flight_; }

 private:
  StageActivations& Acquire(int slot);
  void LayerForward(const float* p, int l, StageActivations& a, const float* x_in, float* x_out);
  void LayerBackward(const float* p, float* g, int l, StageActivations& a, float* dx);

  ModelShape shape_;
  const ParamLayout& layout_;
  int l0_, l1_;
  bool first_, last_;
  int B_;
  ThreadPool* pool_;
  RopeTable rope_;
  std::map<int, std::unique_ptr<StageActivations>> live_;
  std::vector<std::unique_ptr<StageActivations>> free_;
  int peak_in_flight_ = 0;
  bool capture_logits_ = false;
  std::vector<float> captured_logits_;
  // Backward scratch, shared by micro-batches (one backward runs at a time per stage).
  std::vector<float> dx_, dxn_, dq_, dk_, dv_, dao_, dgate_, dup_, dh_;
};

}  // namespace lms::train
