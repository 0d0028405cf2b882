// core's TrainEngine on NVIDIA GPUs: the pipeline's chunks as CudaStages, one host thread and
// one stream per pipeline device, stages placed round-robin on the GPUs named by the device
// string, activations and gradients handed on with the in-process device transport, and the
// optimizer (global-norm clipping, fused AdamW) on the GPUs that own each parameter range.
// fp32 master weights, gradients and moments; matrix products in bf16 (default) or f32.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/train/train_engine.h"
#include "gpu/op_time_total.h"

namespace lms::gpu {
class DeviceTransport;
}
namespace lms::net {
class RankGroup;
}

namespace lms::gpu::train {

class CudaStage;

// "cuda" → every local GPU, "cuda:N", "cuda:0,1". NotFound when a GPU is missing.
Result<std::vector<int>> ParseCudaTrainDevices(const std::string& device);

class CudaTrainEngine;
Result<std::unique_ptr<CudaTrainEngine>> CreateCudaTrainEngine(const lms::train::TrainEngineSpec& spec,
                                                               const lms::train::ParamLayout& layout);
// The same on the GPUs `gpus` (CUDA ordinals; spec.device is not read). An ordinal may repeat:
// each entry is a GPU of its own to the engine, with its own parameter ranges, so a machine with
// one GPU can run the placement, the tied head's copy and the transfers between GPUs (tests).
Result<std::unique_ptr<CudaTrainEngine>> CreateCudaTrainEngineOn(const lms::train::TrainEngineSpec& spec,
                                                                 const lms::train::ParamLayout& layout,
                                                                 const std::vector<int>& gpus);

class CudaTrainEngine : public lms::train::TrainEngine {
 public:
  // The chunk's stage (tests: logits capture).
  virtual CudaStage& stage(int chunk) = 0;
  // Device memory held for activations and scratch, over all stages.
  int64_t activation_bytes() const override = 0;
  // Device memory each GPU of the engine holds for parameters, their bf16 copy, gradients and
  // optimizer state: a GPU holds only the ranges its chunks use.
  virtual std::vector<int64_t> parameter_bytes() const = 0;
  // GPU time per op (TrainKernels') summed over this process's stages since the last
  // ResetOpTimes, when LMS_CUDA_OP_TIMES=1 was set at creation; else empty. Call between steps.
  virtual Result<std::vector<OpTimeTotal>> OpTimeTotals() = 0;
  virtual void ResetOpTimes() = 0;
};

// Where every pipeline device has a GPU of its own (and the schedule is GPipe or 1F1B), engines
// created afterwards hand activations and gradients over with the transport this makes for the
// stages' GPUs (gpu/comm's NcclPipelineTransport) instead of in-process peer copies. Unset by
// default: only executables linked with NCCL set it.
using DeviceTransportFactory =
    std::function<Result<std::unique_ptr<DeviceTransport>>(const std::vector<int>& gpu_of_stage)>;
void SetMultiGpuTransport(DeviceTransportFactory factory);

// In a multi-process run (TrainEngineSpec::ranks) where every rank has a GPU of its own (by PCI
// bus id and host name) and the schedule is GPipe or 1F1B, engines created afterwards hand
// activations and gradients over with the transport this makes (gpu/comm's
// NcclPipelineTransport::Join, bootstrapped over the rank group) instead of through the host.
// Every rank must run an executable that set it. Unset by default: only executables linked with
// NCCL set it.
using RankTransportFactory = std::function<Result<std::unique_ptr<DeviceTransport>>(net::RankGroup& ranks, int gpu)>;
void SetRankTransport(RankTransportFactory factory);

// Adds the "cuda" kind to core's training-engine registry (call once at start-up).
void RegisterCudaTrainEngine();

}  // namespace lms::gpu::train
