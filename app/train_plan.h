// Planning for `lmstation train --plan auto` and `lmstation plan`: profile one layer and the
// embedding/head on each kind of local CPU "device" (a worker-thread count) or GPU, or derive costs
// from FLOPs for a described cluster, and hand the table to the planner.
#pragma once

#include <string>
#include <vector>

#include "app/train_config.h"
#include "core/train/planner.h"

namespace lms::app {

struct AutoPlan {
  std::vector<int> boundaries;
  std::vector<int> threads;   // per stage, in stage order (CPU)
  std::string device;         // the run's device; on GPUs their ids in stage order ("cuda:1,0")
  int microbatches = 1;
  double predicted_step_s = 0;
  std::string note;
};

// The local devices of a run: stage_threads when given, else `stages` devices of `threads`.
std::vector<int> LocalDevices(const TrainRunConfig& c);

// Profiles the model's layers on each local device, alone and all devices at once (the median of
// `reps` timings each). With c.device other than "cpu" the devices are the GPUs it names, each
// kind of card timed once through its training engine (a 1- and a (1+K)-layer model). fixed_microbatches: the plan will use c.microbatches (else any divisor
// of the batch), which decides the micro-batch sizes profiled.
Result<train::PlanProblem> ProfileLocal(const TrainRunConfig& c, const train::ModelShape& shape, bool fixed_microbatches,
                                        int reps = 21);

// Costs from FLOPs and bytes for a described cluster (see train::NamedCluster).
Result<train::PlanProblem> DescribeCluster(const TrainRunConfig& c, const train::ModelShape& shape,
                                           const std::string& cluster);

// Extends a profiled problem to `n` devices like device `d` (the same costs, memory and node):
// planning for GPUs that are not all here, from the one profiled.
void ReplicateDevice(train::PlanProblem& pr, int d, int n);

// The device string that runs pipeline device s on the GPU at position devs[s] of those
// `device` names ("cuda" with devs {1, 0} on two GPUs → "cuda:1,0").
Result<std::string> DeviceString(const std::string& device, const std::vector<int>& devs);

// Profile, plan (choosing M among divisors of batch_size too), and translate to thread counts
// (CPU) or to the GPUs' order (the device string).
Result<AutoPlan> PlanForRun(const TrainRunConfig& c, const train::ModelShape& shape);

}  // namespace lms::app
