// Pipeline step simulator: given a plan, per-stage forward/backward times and a described
// cluster's links, replay the schedule event by event (each stage runs its ops in order; an op
// starts when its stage is free and its input has arrived over the link) and predict the step
// time, each stage's timeline and the bubble. This is how plans past one machine are judged.
#pragma once

#include <string>
#include <vector>

#include "core/train/pipeline.h"
#include "core/train/planner.h"

namespace lms::train {

struct SimStage {
  double fwd_s = 0, bwd_s = 0;  // per micro-batch
  int device = 0;
};

struct SimResult {
  double step_s = 0;                   // the pass (SimulatePlan: plus the optimizer's fixed cost)
  double bubble = 0;                   // 1 − Σ busy / (S · pass)
  std::vector<TimelineEvent> events;   // like a measured StepReport's
  std::vector<double> busy_s;          // per device
  bool deadlocked = false;             // some op never got its input (a broken schedule)
};

// send_s[s]: time to move one micro-batch's activation (or gradient) between stage s and s+1.
// Under the interleaved schedule `stages` lists the S·V chunks in pipeline order (chunk c on
// device c mod S) and send_s has an entry per chunk boundary.
SimResult SimulatePipeline(const std::vector<SimStage>& stages, const std::vector<double>& send_s,
                           ScheduleKind schedule, int microbatches, int chunks = 1);

// The stages of a plan under problem p's costs and links (device nodes decide each link).
SimResult SimulatePlan(const PlanProblem& p, const Plan& plan);

// A described cluster: devices with FLOP/s and memory, links; turns a model's per-layer FLOPs and
// bytes into a PlanProblem. `kind` examples: "8xh100-nvlink", "2x8xh100-100gbe".
struct ClusterDevice {
  std::string name;
  double flops = 0;          // sustained FLOP/s for training matmuls
  double memory_bytes = 0;
  int node = 0;
};
struct Cluster {
  std::vector<ClusterDevice> devices;
  PlanLink intra_node, inter_node;
};
Result<Cluster> NamedCluster(const std::string& kind);

}  // namespace lms::train
