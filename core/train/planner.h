// Automatic pipeline planning: Alpa's inter-operator dynamic programme over per-layer costs.
//
// Given each layer's forward/backward time per token on each device and its memory, choose the
// number of micro-batches M, the stage boundaries and the device of each stage minimising
//     T(M) = Σ_i t_i + (M − 1) · max_i u_i        (t_i: stage i's time for one micro-batch
//                                                   alone, u_i = contention(d_i) · t_i: while
//                                                   all stages run; the bound below is on u)
// (plus the optimizer's fixed cost per step, the same for every plan)
// subject to each stage's memory under the schedule (1F1B: stage s holds min(M, S−s)
// micro-batches of activations; GPipe: M). As in Alpa, the bound t_max = max_i t_i is
// enumerated over the distinct candidate stage times in increasing order; for each, a DP over
// (layers placed, devices used) minimises Σ t_i with every t_i ≤ t_max; enumeration stops once
// (M − 1) · t_max plus a lower bound on Σ t_i cannot beat the best plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/train/pipeline.h"
#include "core/util/status.h"

namespace lms::train {

struct PlanDevice {
  std::string name;
  double memory_bytes = 0;   // usable for weights, optimizer state and activations
  int node = 0;              // devices on different nodes talk over the inter-node link
};

struct PlanLink {
  double bandwidth_Bps = 1e12;  // bytes per second
  double latency_s = 0.0;
};

// Costs of the layers in pipeline order; a stage's time for a micro-batch of n tokens is
// Σ_layers (fwd + bwd per token) · n + Σ_layers s_per_microbatch. The embedding is folded into the first layer and the
// final norm + head + loss into the last, as stages must keep them there.
struct CostTable {
  std::vector<std::vector<double>> fwd_s_per_token;  // [layer][device]
  std::vector<std::vector<double>> bwd_s_per_token;  // [layer][device]
  // Fixed cost of running a layer once per micro-batch, whatever its size (dispatch, thread
  // hand-offs, small-matrix inefficiency): [layer][device] forward + backward; empty = none.
  std::vector<std::vector<double>> s_per_microbatch;
  std::vector<double> weight_bytes;    // [layer] fp32 parameters
  // What a stage holds per byte of weights: 4 = weights, gradients, Adam m and v; the engines
  // also keep a weight-decay flag byte a parameter (+0.25) and the CUDA engine in bf16 mode a
  // bf16 copy of the weights (+0.5).
  double state_per_weight_byte = 4.0;
  std::vector<double> act_bytes_per_token;  // [layer] activations kept per in-flight token
  double boundary_bytes_per_token = 0;      // activation (and gradient) sent between stages
  // Per optimizer step, outside the pipeline: zeroing gradients, their global norm and the
  // AdamW update over all parameters. The same for every plan; part of the predicted step.
  double step_fixed_s = 0;
  // Slowdown of each device's stage while all devices work at once ([device], empty = 1): in
  // the pipeline's steady state the stages overlap and share cores, caches and memory
  // bandwidth; during fill and drain a stage mostly runs alone.
  std::vector<double> contention;
  int layers() const { return static_cast<int>(weight_bytes.size()); }
};

struct PlanProblem {
  CostTable cost;
  std::vector<PlanDevice> devices;
  PlanLink intra_node, inter_node;
  int64_t batch_tokens = 0;            // tokens per optimizer pass (batch_size · seq_len)
  int32_t seq_len = 1;                 // micro-batches hold whole sequences
  std::vector<int> microbatch_choices; // candidate M (each must divide batch_tokens / seq_len)
  int stages = 0;                      // exact stage count; 0 = any (1 … devices)
  ScheduleKind schedule = ScheduleKind::k1F1B;
};

struct Plan {
  int microbatches = 1;
  std::vector<int> boundaries;       // S+1 layer boundaries
  std::vector<int> devices;          // device index per stage
  std::vector<double> stage_s;       // per-micro-batch stage time (fwd + bwd + sends) under contention
  std::vector<double> stage_memory;  // bytes per stage under the schedule
  double predicted_step_s = 0;       // Σ t_i + (M−1)·max u_i + cost.step_fixed_s
  int64_t tmax_evaluated = 0;        // how many t_max bounds the search tried
};

// The optimal plan, or ResourceExhausted when no split fits in memory.
Result<Plan> PlanPipeline(const PlanProblem& p);
// Exhaustive search over every split, device assignment and M (small instances; tests).
Result<Plan> BruteForcePlan(const PlanProblem& p);
// The objective of a given split and assignment (InvalidArgument if it does not fit memory).
Result<Plan> EvaluatePlan(const PlanProblem& p, int microbatches, const std::vector<int>& boundaries,
                          const std::vector<int>& devices);

}  // namespace lms::train
