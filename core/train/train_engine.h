// Where a training step's arithmetic runs. The trainer (trainer.h) keeps the data, the schedule
// of learning rates and the checkpoints; an engine holds the weights, gradients and optimizer
// moments and runs forward/backward passes and the optimizer step. The CPU engine (the pipeline
// of pipeline.h) is built in; other devices register a factory (core cannot depend on gpu/, so
// the composition root calls gpu's register function, as with inference backends).
//
// Thread-safety: register before any lookup (at start-up). An engine is driven by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/train/optimizer.h"
#include "core/train/pipeline.h"

namespace lms::net {
class RankGroup;
}

namespace lms::train {

struct TrainEngineSpec {
  ModelShape shape;
  OptimConfig optim;
  PipelineOptions pipeline;  // micro_batch_size set
  std::string device = "cpu";  // "cpu", "cuda" (every local GPU), "cuda:N", "cuda:0,1"
  std::string precision;       // "" = the device's default; "f32", "bf16" (CUDA)
  // A multi-process run: one pipeline stage per process of this group (stage s on rank s).
  // Every method below is then collective: every rank calls it, in the same order, and gets
  // the same results (losses, norms, the gathered weights). Not owned; outlives the engine.
  net::RankGroup* ranks = nullptr;
};

class TrainEngine {
 public:
  virtual ~TrainEngine() = default;
  virtual std::string Describe() const = 0;  // "cpu", "cuda: 2 × NVIDIA H100 …, bf16"
  virtual int stages() const = 0;            // pipeline devices
  virtual int chunks() const = 0;            // model chunks per device (interleaved)
  // Device memory held for activations and scratch over this process's stages, where the engine
  // allocates it up front (the planner measures it); -1 where it does not say.
  virtual int64_t activation_bytes() const { return -1; }

  // Weights, and optionally the optimizer's moments (zero when null), all layout-sized.
  virtual Status SetState(const std::vector<float>& params, const std::vector<float>* m,
                          const std::vector<float>* v) = 0;
  virtual Status GetParams(std::vector<float>& params) const = 0;
  virtual Status GetMoments(std::vector<float>& m, std::vector<float>& v) const = 0;

  virtual Status ZeroGrads() = 0;
  // One pass over M·micro_batch_size sequences (inputs and targets (M·b, T), on the host),
  // accumulating gradients scaled by loss_scale.
  virtual Result<StepReport> ForwardBackward(const int32_t* inputs, const int32_t* targets, float loss_scale) = 0;
  // Forward only: the summed loss of such a batch.
  virtual Result<StepReport> Forward(const int32_t* inputs, const int32_t* targets) = 0;
  // Clips the accumulated gradients by global norm and applies AdamW for `step` (0-based).
  // Returns the norm before clipping.
  virtual Result<double> OptimizerStep(int64_t step) = 0;
  // The accumulated gradients (tests).
  virtual Status GetGrads(std::vector<float>& grads) const = 0;
};

using TrainEngineFactory =
    std::function<Result<std::unique_ptr<TrainEngine>>(const TrainEngineSpec& spec, const ParamLayout& layout)>;

// `kind` is the device string's part before ':' ("cuda").
void RegisterTrainEngine(const std::string& kind, TrainEngineFactory factory);
std::vector<std::string> RegisteredTrainEngines();  // kinds besides "cpu"

// The engine for spec.device. Unsupported when that kind was not built into this program.
// `layout` must outlive the engine.
Result<std::unique_ptr<TrainEngine>> CreateTrainEngine(const TrainEngineSpec& spec, const ParamLayout& layout);

// The built-in engine: the CPU pipeline, AdamW on the host.
Result<std::unique_ptr<TrainEngine>> CreateCpuTrainEngine(const TrainEngineSpec& spec, const ParamLayout& layout);

}  // namespace lms::train
