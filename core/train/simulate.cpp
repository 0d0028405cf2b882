#include "core/train/simulate.h"

#include <fmt/format.h>

#include <algorithm>

namespace lms::train {

SimResult SimulatePipeline(const std::vector<SimStage>& st, const std::vector<double>& send_s, ScheduleKind schedule,
                           int M, int V) {
  const int C = static_cast<int>(st.size());  // chunks: stages, or S·V under the interleaved schedule
  const int S = std::max(1, C / std::max(1, V));
  const auto ops = MakeSchedule(schedule, S, M, V);
  // ready_f[c][m]: when micro-batch m's activation is available at chunk c; ready_b likewise.
  std::vector<std::vector<double>> ready_f(C, std::vector<double>(M, -1)), ready_b(C, std::vector<double>(M, -1));
  for (int m = 0; m < M; ++m) ready_f[0][m] = 0;
  std::vector<size_t> next(S, 0);
  std::vector<double> free_at(S, 0);
  SimResult r;
  r.busy_s.assign(S, 0);
  // Repeatedly run any device whose next op has its input; an op waiting forever is a deadlock.
  bool progressed = true;
  while (progressed) {
    progressed = false;
    for (int s = 0; s < S; ++s) {
      while (next[s] < ops[s].size()) {
        const PipeOp& op = ops[s][next[s]];
        const int m = op.microbatch, c = op.chunk * S + s;
        // The last chunk's backward needs only its own forward, which ran earlier in its order.
        const double ready = op.forward ? ready_f[c][m] : (c == C - 1 ? ready_f[c][m] : ready_b[c][m]);
        if (ready < 0) break;
        const double start = std::max(free_at[s], ready);
        const double dur = op.forward ? st[c].fwd_s : st[c].bwd_s;
        const double end = start + dur;
        free_at[s] = end;
        r.busy_s[s] += dur;
        r.events.push_back({s, m, op.forward, start, end, op.chunk});
        if (op.forward && c + 1 < C) ready_f[c + 1][m] = end + send_s[c];
        if (!op.forward && c > 0) ready_b[c - 1][m] = end + send_s[c - 1];
        ++next[s];
        progressed = true;
      }
    }
  }
  for (int s = 0; s < S; ++s) r.deadlocked = r.deadlocked || next[s] < ops[s].size();
  for (double f : free_at) r.step_s = std::max(r.step_s, f);
  double busy = 0;
  for (double b : r.busy_s) busy += b;
  r.bubble = r.step_s > 0 ? 1.0 - busy / (r.step_s * S) : 0.0;
  return r;
}

SimResult SimulatePlan(const PlanProblem& p, const Plan& plan) {
  const int S = static_cast<int>(plan.devices.size());
  const double mb_tokens = static_cast<double>(p.batch_tokens) / plan.microbatches;
  std::vector<SimStage> st(S);
  std::vector<double> send(std::max(0, S - 1), 0.0);
  for (int s = 0; s < S; ++s) {
    const int d = plan.devices[s];
    st[s].device = d;
    for (int l = plan.boundaries[s]; l < plan.boundaries[s + 1]; ++l) {
      st[s].fwd_s += p.cost.fwd_s_per_token[l][d] * mb_tokens;
      st[s].bwd_s += p.cost.bwd_s_per_token[l][d] * mb_tokens;
      if (!p.cost.s_per_microbatch.empty()) {  // split like the work: a third forward
        st[s].fwd_s += p.cost.s_per_microbatch[l][d] / 3.0;
        st[s].bwd_s += p.cost.s_per_microbatch[l][d] * 2.0 / 3.0;
      }
    }
    if (S > 1 && !p.cost.contention.empty()) {  // the stages overlap most of the time
      st[s].fwd_s *= p.cost.contention[d];
      st[s].bwd_s *= p.cost.contention[d];
    }
    if (s + 1 < S) {
      const bool same_node = p.devices[d].node == p.devices[plan.devices[s + 1]].node;
      const PlanLink& link = same_node ? p.intra_node : p.inter_node;
      send[s] = link.latency_s + p.cost.boundary_bytes_per_token * mb_tokens / link.bandwidth_Bps;
    }
  }
  SimResult r = SimulatePipeline(st, send, p.schedule, plan.microbatches);
  // The optimizer runs after the pass; the bubble stays that of the pass.
  r.step_s += p.cost.step_fixed_s;
  return r;
}

Result<Cluster> NamedCluster(const std::string& kind) {
  Cluster c;
  // Sustained training throughput, not peak: ~40% of dense BF16 peak (H100 SXM ≈ 989 TFLOP/s).
  const ClusterDevice h100{"h100", 0.4 * 989e12, 80e9, 0};
  if (kind == "8xh100-nvlink") {
    for (int i = 0; i < 8; ++i) c.devices.push_back({fmt::format("h100-{}", i), h100.flops, h100.memory_bytes, 0});
    c.intra_node = {450e9, 5e-6};   // NVLink 4 per direction
    c.inter_node = c.intra_node;
    return c;
  }
  if (kind == "2x8xh100-100gbe") {
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 8; ++i)
        c.devices.push_back({fmt::format("n{}-h100-{}", n, i), h100.flops, h100.memory_bytes, n});
    c.intra_node = {450e9, 5e-6};
    c.inter_node = {12.5e9, 20e-6};  // 100 Gb/s Ethernet
    return c;
  }
  if (kind == "h100+a100") {  // unequal GPUs: 4 H100 and 4 A100 (312 TFLOP/s BF16, 40 GB)
    for (int i = 0; i < 4; ++i) c.devices.push_back({fmt::format("h100-{}", i), h100.flops, 80e9, 0});
    for (int i = 0; i < 4; ++i) c.devices.push_back({fmt::format("a100-{}", i), 0.4 * 312e12, 40e9, 0});
    c.intra_node = {300e9, 5e-6};
    c.inter_node = c.intra_node;
    return c;
  }
  return Status::InvalidArgument("unknown cluster '" + kind + "' (known: 8xh100-nvlink, 2x8xh100-100gbe, h100+a100)");
}

}  // namespace lms::train
