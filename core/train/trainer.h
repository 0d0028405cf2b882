// The training loop of one run: data → pipeline forward/backward (with gradient accumulation)
// → global-norm clipping → AdamW, plus validation loss and checkpoint state. The arithmetic runs
// on a TrainEngine (the CPU pipeline, or a GPU's).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/train/checkpoint.h"
#include "core/train/data.h"
#include "core/train/optimizer.h"
#include "core/train/pipeline.h"
#include "core/train/train_engine.h"

namespace lms::train {

struct TrainerConfig {
  ModelShape shape;
  OptimConfig optim;
  PipelineOptions pipeline;   // boundaries, threads, schedule, microbatches (micro_batch_size derived)
  int32_t batch_size = 8;     // sequences per forward/backward pass (split into M micro-batches)
  int32_t grad_accum = 1;     // passes per optimizer step
  uint64_t seed = 1;
  int32_t eval_batches = 4;   // validation batches of batch_size sequences
  std::string device = "cpu"; // where the arithmetic runs (train_engine.h)
  std::string precision;      // "" = the device's default
  // A multi-process run (TrainEngineSpec::ranks): every rank runs the same Trainer calls in
  // the same order and sees the same losses and weights.
  net::RankGroup* ranks = nullptr;
};

struct StepStats {
  int64_t step = 0;           // 1-based: optimizer steps done after this one
  double loss = 0.0;          // mean training loss of the step
  float lr = 0.0f;
  double grad_norm = 0.0;     // before clipping
  int64_t tokens = 0;
  double seconds = 0.0;
  double bubble = 0.0;        // measured, last pass of the step
  StepReport report;          // timeline of the last pass
};

class Trainer {
 public:
  // params: initial weights (e.g. imported from a GGUF); empty → seeded initialisation.
  static Result<std::unique_ptr<Trainer>> Create(const TrainerConfig& c, std::vector<float> params,
                                                 std::vector<int32_t> train_tokens, std::vector<int32_t> val_tokens);

  Result<StepStats> Step();
  // Mean loss over eval_batches validation batches (always the same ones).
  Result<double> ValidationLoss();

  Result<Checkpoint> MakeCheckpoint() const;
  // Restores weights, optimizer moments, step, RNG and data position. InvalidArgument when the
  // checkpoint's shape differs from this run's.
  Status Restore(const Checkpoint& c);

  int64_t step() const { return step_; }
  // The current weights (copied from the engine's device).
  const std::vector<float>& params() const;
  const ParamLayout& layout() const { return layout_; }
  TrainEngine& engine() { return *engine_; }
  const TrainerConfig& config() const { return c_; }

 private:
  Trainer(const TrainerConfig& c) : c_(c), layout_(ParamLayout::For(c.shape)) {}

  TrainerConfig c_;
  ParamLayout layout_;
  mutable std::vector<float> params_;  // a host copy, refreshed by params()
  std::unique_ptr<TrainEngine> engine_;
  std::unique_ptr<BatchLoader> train_, val_;
  std::mt19937_64 rng_;
  int64_t step_ = 0;
  std::vector<int32_t> inputs_, targets_;
};

}  // namespace lms::train
