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

namespace lms::net {
class RankGroup;
}

namespace lms::train {

enum class ScheduleKind { kGPipe, k1F1B, kInterleaved };
Result<ScheduleKind> ParseSchedule(const std::string& name);  // "gpipe" | "1f1b" | "interleaved"
const char* ScheduleName(ScheduleKind k);

struct PipeOp {
  bool forward = true;
  int microbatch = 0;
  int chunk = 0;  // which of the device's model chunks (interleaved; 0 otherwise)
};
// The order in which each of S devices runs its forwards and backwards.
//  GPipe: all M forwards, then all M backwards.
//  1F1B (PipeDream-Flush): S−s−1 warm-up forwards, then one forward / one backward, then the
//  remaining backwards; stage s holds at most S−s micro-batches' activations.
//  Interleaved 1F1B (Megatron-LM's): the model is cut into S·V chunks and device s holds chunks
//  s, s+S, …, s+(V−1)·S. Forwards go through the chunks in groups of S micro-batches; a device
//  warms up with 2·(S−s−1) + (V−1)·S forwards, then alternates. The bubble shrinks V-fold at
//  the cost of more activations in flight. Needs M to be a multiple of S and V ≥ 2.
// Backwards run in micro-batch order 0..M−1 for every chunk in all three, so gradients sum in
// the same order.
std::vector<std::vector<PipeOp>> MakeSchedule(ScheduleKind k, int stages, int microbatches, int chunks = 1);

// (S−1)/(V·M+S−1): the idle fraction of a pipeline with equal stage times (V = 1 for GPipe
// and 1F1B).
double TheoreticalBubble(int stages, int microbatches, int chunks = 1);

// Equal split of L layers into S ranges (boundaries, size S+1).
std::vector<int> EqualSplit(int layers, int stages);

struct PipelineOptions {
  // S·V+1 layer boundaries: chunk c runs layers [b[c], b[c+1]) on device c mod S (V = 1 but
  // for the interleaved schedule, where a device is a stage of V chunks).
  std::vector<int> boundaries;
  std::vector<int> threads;         // worker threads per device (size S; default 1 each)
  ScheduleKind schedule = ScheduleKind::k1F1B;
  int chunks = 1;                   // V: model chunks per device (interleaved only)
  int microbatches = 1;             // M
  int micro_batch_size = 1;         // sequences per micro-batch
};

// InvalidArgument when the options do not describe a pipeline of `shape` (boundaries, chunks,
// schedule, micro-batches, thread counts); what every engine checks before it builds stages.
Status ValidatePipeline(const ModelShape& shape, const PipelineOptions& opt);

struct TimelineEvent {
  int stage = 0, microbatch = 0;    // stage: the device
  bool forward = true;
  double start_s = 0, end_s = 0;    // seconds from the step's start
  int chunk = 0;                    // the device's model chunk (interleaved)
};

struct StepReport {
  double loss_sum = 0.0;            // Σ per-token losses
  int64_t tokens = 0;               // counted targets
  double wall_s = 0.0;
  std::vector<double> busy_s;       // per device
  std::vector<int> peak_in_flight;  // per device: most (chunk, micro-batch) activations alive at once
  std::vector<TimelineEvent> events;
  // 1 − Σ busy / (S · wall): the fraction of stage-time spent waiting.
  double Bubble() const;
};

class Pipeline {
 public:
  // With `ranks` (a group of as many processes as devices), this process runs device
  // ranks->rank() only, and messages to the other devices go to their processes. Every
  // process calls ForwardBackward and Forward together; the loss comes out of the last
  // device's process only, and the tied head's gradient share is sent to device 0's.
  static Result<std::unique_ptr<Pipeline>> Create(const ModelShape& shape, const ParamLayout& layout,
                                                  const PipelineOptions& opt, net::RankGroup* ranks = nullptr);
  ~Pipeline();

  int stages() const { return S_; }  // devices
  // Whether this process runs device s (always, unless the pipeline spans processes).
  bool Local(int s) const;
  int chunks() const { return opt_.chunks; }
  const PipelineOptions& options() const { return opt_; }

  // One step's forward and backward over M·micro_batch_size sequences: inputs and targets are
  // (M·b, T). Accumulates gradients into `grads` (flat, layout-sized) scaled by loss_scale
  // (1 / tokens of the whole optimizer step).
  Result<StepReport> ForwardBackward(const std::vector<float>& params, std::vector<float>& grads,
                                     const int32_t* inputs, const int32_t* targets, float loss_scale);
  // Forward only (validation): the summed loss of the same kind of batch.
  Result<StepReport> Forward(const std::vector<float>& params, const int32_t* inputs, const int32_t* targets);

  Stage& stage(int c) { return *stages_[c]; }  // chunk c (= stage c unless interleaved); a local one

 private:
  Pipeline() = default;
  Result<StepReport> Run(const std::vector<float>* params, std::vector<float>* grads, const int32_t* inputs,
                         const int32_t* targets, float loss_scale, bool backward);

  ModelShape shape_;
  const ParamLayout* layout_ = nullptr;
  PipelineOptions opt_;
  int S_ = 1;
  net::RankGroup* ranks_ = nullptr;
  Status broken_;  // a multi-process step failed: the group is gone
  std::vector<std::unique_ptr<ThreadPool>> pools_;  // null for devices of other processes
  std::vector<std::unique_ptr<Stage>> stages_;
  std::unique_ptr<Transport> transport_;
  std::vector<float> head_grad_;  // the last stage's share of the tied embedding gradient (S > 1)
};

}  // namespace lms::train
