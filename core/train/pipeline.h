// Pipeline-parallel training step: the model split into S stages by layer ranges, each stage a
// "device" (its own thread and worker pool), micro-batches moved between stages over a
// Transport in the order a schedule prescribes (GPipe or 1F1B), with per-stage timelines.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/train/train_model.h"
#include "core/train/transport.h"

namespace lms::train {

enum class ScheduleKind { kGPipe, k1F1B };
Result<ScheduleKind> ParseSchedule(const std::string& name);  // "gpipe" | "1f1b"
const char* ScheduleName(ScheduleKind k);

struct PipeOp {
  bool forward = true;
  int microbatch = 0;
};
// The order in which each stage runs its forwards and backwards.
//  GPipe: all M forwards, then all M backwards.
//  1F1B (PipeDream-Flush): S−s−1 warm-up forwards, then one forward / one backward, then the
//  remaining backwards; stage s holds at most S−s micro-batches' activations.
// Backwards run in micro-batch order 0..M−1 in both, so gradients sum in the same order.
std::vector<std::vector<PipeOp>> MakeSchedule(ScheduleKind k, int stages, int microbatches);

// (S−1)/(M+S−1): the idle fraction of a pipeline with equal stage times.
double TheoreticalBubble(int stages, int microbatches);

// Equal split of L layers into S ranges (boundaries, size S+1).
std::vector<int> EqualSplit(int layers, int stages);

struct PipelineOptions {
  std::vector<int> boundaries;      // S+1 layer boundaries: stage s runs [b[s], b[s+1])
  std::vector<int> threads;         // worker threads per stage (size S; default 1 each)
  ScheduleKind schedule = ScheduleKind::k1F1B;
  int microbatches = 1;             // M
  int micro_batch_size = 1;         // sequences per micro-batch
};

struct TimelineEvent {
  int stage = 0, microbatch = 0;
  bool forward = true;
  double start_s = 0, end_s = 0;    // seconds from the step's start
};

struct StepReport {
  double loss_sum = 0.0;            // Σ per-token losses
  int64_t tokens = 0;               // counted targets
  double wall_s = 0.0;
  std::vector<double> busy_s;       // per stage
  std::vector<int> peak_in_flight;  // per stage: most micro-batches with live activations
  std::vector<TimelineEvent> events;
  // 1 − Σ busy / (S · wall): the fraction of stage-time spent waiting.
  double Bubble() const;
};

class Pipeline {
 public:
  static Result<std::unique_ptr<Pipeline>> Create(const ModelShape& shape, const ParamLayout& layout,
                                                  const PipelineOptions& opt);
  ~Pipeline();

  int stages() const { return static_cast<int>(stages_.size()); }
  const PipelineOptions& options() const { return opt_; }

  // One step's forward and backward over M·micro_batch_size sequences: inputs and targets are
  // (M·b, T). Accumulates gradients into `grads` (flat, layout-sized) scaled by loss_scale
  // (1 / tokens of the whole optimizer step).
  Result<StepReport> ForwardBackward(const std::vector<float>& params, std::vector<float>& grads,
                                     const int32_t* inputs, const int32_t* targets, float loss_scale);
  // Forward only (validation): the summed loss of the same kind of batch.
  Result<StepReport> Forward(const std::vector<float>& params, const int32_t* inputs, const int32_t* targets);

  Stage& stage(int s) { return *stages_[s]; }

 private:
  Pipeline() = default;
  Result<StepReport> Run(const std::vector<float>* params, std::vector<float>* grads, const int32_t* inputs,
                         const int32_t* targets, float loss_scale, bool backward);

  ModelShape shape_;
  const ParamLayout* layout_ = nullptr;
  PipelineOptions opt_;
  std::vector<std::unique_ptr<ThreadPool>> pools_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::unique_ptr<Transport> transport_;
  std::vector<float> head_grad_;  // the last stage's share of the tied embedding gradient (S > 1)
};

}  // namespace lms::train
