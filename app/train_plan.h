// Planning for `lmstation train --plan auto` and `lmstation plan`: profile one layer and the
// embedding/head on each kind of local CPU "device" (a worker-thread count), or derive costs
// from FLOPs for a described cluster, and hand the table to the planner.
#pragma once

#include <string>
#include <vector>

#include "app/train_config.h"
#include "core/train/planner.h"

namespace lms::app {

struct AutoPlan {
  std::vector<int> boundaries;
  std::vector<int> threads;   // per stage, in stage order
  int microbatches = 1;
  double predicted_step_s = 0;
  std::string note;
};

// The local devices of a run: stage_threads when given, else `stages` devices of `threads`.
std::vector<int> LocalDevices(const TrainRunConfig& c);

// Profiles the model's layers on each local device, alone and all devices at once (the median of
// `reps` timings each). fixed_microbatches: the plan will use c.microbatches (else any divisor
// of the batch), which decides the micro-batch sizes profiled.
Result<train::PlanProblem> ProfileLocal(const TrainRunConfig& c, const train::ModelShape& shape, bool fixed_microbatches,
                                        int reps = 21);

// Costs from FLOPs and bytes for a described cluster (see train::NamedCluster).
Result<train::PlanProblem> DescribeCluster(const TrainRunConfig& c, const train::ModelShape& shape,
                                           const std::string& cluster);

// Profile, plan (choosing M among divisors of batch_size too), and translate to thread counts.
Result<AutoPlan> PlanForRun(const TrainRunConfig& c, const train::ModelShape& shape);

}  // namespace lms::app
