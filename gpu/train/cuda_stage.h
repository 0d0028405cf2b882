// One pipeline chunk of the trainer on a GPU: layers [l0, l1) of core's train::Stage (with the
// embedding on the first chunk and the final norm, head and loss on the last), the same
// arithmetic on device memory through TrainKernels (in kBF16 with bf16 activations where autocast
// would have them, and products of adjacent matrices fused). Activations of every micro-batch
// that can be in flight at once are allocated up front (an out-of-memory shows at creation, not
// mid-step).
// All work is enqueued on the kernels' stream; one thread drives a stage.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <cuda_bf16.h>

#include "core/train/train_model.h"
#include "gpu/train/device_buffer.h"
#include "gpu/train/train_kernels.h"

namespace lms::gpu::train {

// The parameters one GPU holds: ranges [begin, end) of the flat vector (layout offsets), each
// with its fp32 weights, their bf16 copy (kBF16) and, for the ranges the GPU owns, gradients.
// A GPU holds only what its chunks use, so a pipeline over several GPUs splits the model's
// memory among them.
struct ParamSegment {
  int64_t begin = 0, end = 0;
  const float* p = nullptr;
  const void* p_bf16 = nullptr;  // __nv_bfloat16*, or nullptr
  float* g = nullptr;            // nullptr: a read-only copy (the tied head on the last GPU)
};

struct DeviceParams {
  std::vector<ParamSegment> segments;
  // A tensor's weights, bf16 weights and gradient on this GPU; nullptr where it has none.
  const float* p(const lms::train::ParamTensor& t) const;
  const void* bf16(const lms::train::ParamTensor& t) const;
  float* g(const lms::train::ParamTensor& t) const;

 private:
  const ParamSegment* Find(const lms::train::ParamTensor& t) const;
};

// A stage's buffer kept in fp32 or, in kBF16 where only products and element-wise kernels read
// it, in bf16 alone: whichever was allocated.
struct ActBuffer {
  DeviceBuffer<float> f32;
  DeviceBuffer<__nv_bfloat16> bf16;
  // From element `at` on.
  Activation in(int64_t at = 0) const {
    return Activation{f32.get() ? f32.get() + at : nullptr, bf16.get() ? bf16.get() + at : nullptr};
  }
  Output out(int64_t at = 0) const {
    Output o;
    o.f32 = f32.get() ? f32.get() + at : nullptr;
    o.bf16 = bf16.get() ? bf16.get() + at : nullptr;
    return o;
  }
};

// Whether stages run flash attention (attention_flash.cu): in kBF16 for the head dims and
// sizes it supports, unless LMS_CUDA_ATTENTION=materialized asks for the T×T path (kF32 always takes it:
// the CPU's arithmetic, for tests).
bool UseFlashAttention(GemmPrecision precision, const lms::train::ModelShape& shape, int micro_batch);

class CudaStage {
 public:
  // `slots`: how many micro-batches may hold activations at once.
  static Result<std::unique_ptr<CudaStage>> Create(const lms::train::ModelShape& shape,
                                                   const lms::train::ParamLayout& layout, int l0, int l1, bool first,
                                                   bool last, int micro_batch, int slots, TrainKernels* kernels);
  ~CudaStage();

  int64_t rows() const { return rows_; }              // B·T
  // Internal when P lacks a tensor the chunk reads, or the gradient of one it owns.
  Status CheckParams(const DeviceParams& P) const;
  int64_t activation_bytes() const { return act_bytes_; }  // all slots and scratch
  bool flash_attention() const { return flash_; }

  // Forward of micro-batch `slot`. First: tokens (B·T, host). Others: x_in (B·T, d, device).
  // Non-last: writes x_out (device). Last: targets (host; < 0 ignored), adds the loss sum and
  // count to the device scalars and keeps dlogits·loss_scale for Backward.
  Status Forward(int slot, const DeviceParams& P, const int32_t* tokens, const float* x_in, const int32_t* targets,
                 float loss_scale, float* x_out, double* loss_sum, int64_t* loss_count);
  // Backward of `slot`, then releases it. dx_out from the next chunk (device; unused on the
  // last). Accumulates into P.g and the tied head gradient into head_grad (V, d). Writes dx_in
  // (device) unless first.
  Status Backward(int slot, const DeviceParams& P, const float* dx_out, float* head_grad, float* dx_in);
  void Release(int slot);

  // Copies the last forward's logits to the host (tests): the stage keeps them when on.
  void set_capture_logits(bool on) { capture_ = on; }
  const std::vector<float>& captured_logits() const { return captured_; }

 private:
  struct Slot;
  CudaStage() = default;
  Slot* Acquire(int slot);
  Weight W(const DeviceParams& P, const lms::train::ParamTensor& t) const;
  Status LayerForward(const DeviceParams& P, int l, Slot& a);
  // dx16_fresh: dx16_ holds dx in bf16 (written by the norm backward before).
  Status LayerBackward(const DeviceParams& P, int l, Slot& a, float* dx, bool dx16_fresh);
  Status CaptureLogits(const Slot& a);  // into captured_, as fp32

  lms::train::ModelShape shape_;
  const lms::train::ParamLayout* layout_ = nullptr;
  int l0_ = 0, l1_ = 0;
  bool first_ = false, last_ = false;
  bool flash_ = false;  // flash attention; L.att then holds log-sum-exps, not probabilities
  bool bf16_ = false;   // kBF16: the logits and the loss's gradient in bf16, over each other
  bool attn16_ = false;  // kBF16 with flash attention: its operands and gradients in bf16
  int B_ = 1;
  int64_t rows_ = 0, act_bytes_ = 0;
  TrainKernels* k_ = nullptr;
  DeviceBuffer<float> rope_cos_, rope_sin_;
  std::vector<std::unique_ptr<Slot>> slots_;  // free when owner < 0
  // Backward scratch (one backward at a time per stage); SwiGLU's input and output gradients in
  // bf16 alone in kBF16, the attention's with flash attention in kBF16.
  DeviceBuffer<float> dx_, dxn_;
  // dgu_, dqkv_: SwiGLU's and the attention's input gradients side by side, as gu and qkv.
  ActBuffer dgu_, dh_, dqkv_, dao_;
  ActBuffer proj_;                           // forward: the o and down products before their adds
  DeviceBuffer<__nv_bfloat16> dx16_;         // kBF16: dx in bf16, as the norm backwards leave it
  bool capture_ = false;
  std::vector<float> captured_;
};

}  // namespace lms::gpu::train
