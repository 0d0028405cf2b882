#include "core/train/planner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace lms::train {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Devices with identical cost columns, memory and node are interchangeable: the DP counts how
// many of each type are used instead of which ones.
struct DeviceTypes {
  std::vector<int> type_of;               // device → type
  std::vector<std::vector<int>> members;  // type → devices
};

DeviceTypes GroupDevices(const PlanProblem& p) {
  DeviceTypes g;
  const int D = static_cast<int>(p.devices.size());
  g.type_of.assign(D, -1);
  for (int d = 0; d < D; ++d) {
    for (size_t t = 0; t < g.members.size() && g.type_of[d] < 0; ++t) {
      const int r = g.members[t][0];
      bool same = p.devices[r].memory_bytes == p.devices[d].memory_bytes && p.devices[r].node == p.devices[d].node;
      for (int l = 0; same && l < p.cost.layers(); ++l) {
        same = p.cost.fwd_s_per_token[l][r] == p.cost.fwd_s_per_token[l][d] &&
               p.cost.bwd_s_per_token[l][r] == p.cost.bwd_s_per_token[l][d];
      }
      if (same) {
        g.type_of[d] = static_cast<int>(t);
        g.members[t].push_back(d);
      }
    }
    if (g.type_of[d] < 0) {
      g.type_of[d] = static_cast<int>(g.members.size());
      g.members.push_back({d});
    }
  }
  return g;
}

bool MultiNode(const PlanProblem& p) {
  for (const auto& d : p.devices)
    if (d.node != p.devices[0].node) return true;
  return false;
}

// Per-device prefix sums of (fwd + bwd) seconds per token and of weight/activation bytes.
struct Prefix {
  std::vector<std::vector<double>> time;  // [device][l]
  std::vector<double> weight, act;        // [l]
  double Time(int d, int a, int b) const { return time[d][b] - time[d][a]; }
  double Weight(int a, int b) const { return weight[b] - weight[a]; }
  double Act(int a, int b) const { return act[b] - act[a]; }
};

Prefix MakePrefix(const PlanProblem& p) {
  const int L = p.cost.layers(), D = static_cast<int>(p.devices.size());
  Prefix x;
  x.time.assign(D, std::vector<double>(L + 1, 0.0));
  x.weight.assign(L + 1, 0.0);
  x.act.assign(L + 1, 0.0);
  for (int l = 0; l < L; ++l) {
    for (int d = 0; d < D; ++d) {
      x.time[d][l + 1] = x.time[d][l] + p.cost.fwd_s_per_token[l][d] + p.cost.bwd_s_per_token[l][d];
    }
    x.weight[l + 1] = x.weight[l] + p.cost.weight_bytes[l];
    x.act[l + 1] = x.act[l] + p.cost.act_bytes_per_token[l];
  }
  return x;
}

struct Ctx {
  const PlanProblem& p;
  Prefix pre;
  double send_s = 0;     // one boundary transfer per micro-batch, each direction
  double mb_tokens = 0;  // tokens per micro-batch
  int M = 1;
};

// Time of stage [a, b) on device d for one micro-batch (compute plus sending its output).
double StageTime(const Ctx& c, int a, int b, int d, bool last) {
  return c.pre.Time(d, a, b) * c.mb_tokens + (last ? 0.0 : c.send_s);
}

double StageMemory(const Ctx& c, int a, int b, int stage, int S) {
  const int in_flight = c.p.schedule == ScheduleKind::kGPipe ? c.M : std::min(c.M, S - stage);
  return 4.0 * c.pre.Weight(a, b) + in_flight * c.pre.Act(a, b) * c.mb_tokens;
}

Status CheckProblem(const PlanProblem& p) {
  const int L = p.cost.layers(), D = static_cast<int>(p.devices.size());
  if (L < 1) return Status::InvalidArgument("plan: no layers");
  if (D < 1) return Status::InvalidArgument("plan: no devices");
  if (static_cast<int>(p.cost.fwd_s_per_token.size()) != L || static_cast<int>(p.cost.bwd_s_per_token.size()) != L ||
      static_cast<int>(p.cost.act_bytes_per_token.size()) != L) {
    return Status::InvalidArgument("plan: cost table columns differ in length");
  }
  for (int l = 0; l < L; ++l) {
    if (static_cast<int>(p.cost.fwd_s_per_token[l].size()) != D || static_cast<int>(p.cost.bwd_s_per_token[l].size()) != D) {
      return Status::InvalidArgument(fmt::format("plan: layer {} has costs for {} devices, expected {}", l,
                                                 p.cost.fwd_s_per_token[l].size(), D));
    }
  }
  if (p.stages < 0 || p.stages > std::min(L, D)) {
    return Status::InvalidArgument(fmt::format("plan: {} stages for {} layers on {} devices", p.stages, L, D));
  }
  if (p.seq_len < 1 || p.batch_tokens < p.seq_len) return Status::InvalidArgument("plan: batch smaller than one sequence");
  const int64_t seqs = p.batch_tokens / p.seq_len;
  if (p.microbatch_choices.empty()) return Status::InvalidArgument("plan: no micro-batch counts to choose from");
  for (int m : p.microbatch_choices) {
    if (m < 1 || seqs % m != 0) return Status::InvalidArgument(fmt::format("plan: {} micro-batches do not divide {} sequences", m, seqs));
  }
  return Status::Ok();
}

Ctx MakeCtx(const PlanProblem& p, const Prefix& pre, int M) {
  Ctx c{p, pre};
  c.M = M;
  c.mb_tokens = static_cast<double>(p.batch_tokens) / M;
  const PlanLink& link = MultiNode(p) ? p.inter_node : p.intra_node;
  c.send_s = link.latency_s + p.cost.boundary_bytes_per_token * c.mb_tokens / link.bandwidth_Bps;
  return c;
}

Plan Finish(const Ctx& c, std::vector<int> bounds, std::vector<int> devs) {
  Plan pl;
  pl.microbatches = c.M;
  pl.boundaries = std::move(bounds);
  pl.devices = std::move(devs);
  const int S = static_cast<int>(pl.devices.size());
  double sum = 0, mx = 0;
  for (int s = 0; s < S; ++s) {
    const double t = StageTime(c, pl.boundaries[s], pl.boundaries[s + 1], pl.devices[s], s == S - 1);
    pl.stage_s.push_back(t);
    pl.stage_memory.push_back(StageMemory(c, pl.boundaries[s], pl.boundaries[s + 1], s, S));
    sum += t;
    mx = std::max(mx, t);
  }
  pl.predicted_step_s = sum + (c.M - 1) * mx;
  return pl;
}

// Alpa's DP for one M: returns the best plan (predicted_step_s = kInf when none fits).
Plan SolveForM(const PlanProblem& p, const Prefix& pre, const DeviceTypes& types, int M, int S, double best_so_far,
               int64_t* evaluated) {
  const Ctx c = MakeCtx(p, pre, M);
  const int L = p.cost.layers(), NT = static_cast<int>(types.members.size());
  // Mixed-radix index over per-type used counts.
  std::vector<int> radix(NT), stride(NT);
  int n_masks = 1;
  for (int t = 0; t < NT; ++t) {
    radix[t] = static_cast<int>(types.members[t].size()) + 1;
    stride[t] = n_masks;
    n_masks *= radix[t];
  }
  std::vector<int> used_stages(n_masks, 0);
  for (int m = 0; m < n_masks; ++m) {
    int u = 0;
    for (int t = 0; t < NT; ++t) u += (m / stride[t]) % radix[t];
    used_stages[m] = u;
  }
  const int D = static_cast<int>(p.devices.size());
  const int s_min = S, s_max = S;
  // Candidate t_max: every possible stage time; a lower bound on Σ t_i: each layer on its fastest device.
  std::vector<double> cand;
  cand.reserve(static_cast<size_t>(L) * (L + 1) / 2 * NT * 2);
  for (int a = 0; a < L; ++a)
    for (int b = a + 1; b <= L; ++b)
      for (int t = 0; t < NT; ++t) {
        const int d = types.members[t][0];
        cand.push_back(StageTime(c, a, b, d, true));
        if (b < L) cand.push_back(StageTime(c, a, b, d, false));
      }
  std::sort(cand.begin(), cand.end());
  cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  double sum_lb = 0;
  for (int l = 0; l < L; ++l) {
    double f = kInf;
    for (int d = 0; d < D; ++d) f = std::min(f, pre.Time(d, l, l + 1));
    sum_lb += f * c.mb_tokens;
  }
  Plan best;
  best.predicted_step_s = kInf;
  double best_total = best_so_far;
  // F[k][mask]: min Σ t_i placing layers k..L−1 with `mask` devices already used. Choice recorded.
  std::vector<double> F(static_cast<size_t>(L + 1) * n_masks);
  std::vector<int> choice_b(F.size()), choice_t(F.size());
  for (double tmax : cand) {
    if ((M - 1) * tmax + sum_lb >= best_total) break;
    ++*evaluated;
    for (int mask = 0; mask < n_masks; ++mask) {
      const int u = used_stages[mask];
      F[static_cast<size_t>(L) * n_masks + mask] = (u >= s_min && u <= s_max) ? 0.0 : kInf;
    }
    for (int k = L - 1; k >= 0; --k) {
      for (int mask = 0; mask < n_masks; ++mask) {
        double bestv = kInf;
        int bb = -1, bt = -1;
        const int stage = used_stages[mask];
        if (stage < s_max) {
          for (int t = 0; t < NT; ++t) {
            if ((mask / stride[t]) % radix[t] == radix[t] - 1) continue;  // none of this type left
            const int d = types.members[t][0];
            const int next = mask + stride[t];
            for (int b = k + 1; b <= L; ++b) {
              const double compute = c.pre.Time(d, k, b) * c.mb_tokens;
              if (compute > tmax) break;  // compute grows with b
              const double ts = StageTime(c, k, b, d, b == L);
              if (ts > tmax) continue;
              const double rest = F[static_cast<size_t>(b) * n_masks + next];
              if (rest == kInf) continue;
              if (StageMemory(c, k, b, stage, S) > p.devices[d].memory_bytes) continue;
              if (ts + rest < bestv) {
                bestv = ts + rest;
                bb = b;
                bt = t;
              }
            }
          }
        }
        const size_t at = static_cast<size_t>(k) * n_masks + mask;
        F[at] = bestv;
        choice_b[at] = bb;
        choice_t[at] = bt;
      }
    }
    if (F[0] == kInf) continue;
    // Rebuild the split; the actual devices are the next unused member of each chosen type.
    std::vector<int> bounds{0}, devs;
    std::vector<int> used(NT, 0);
    int k = 0, mask = 0;
    while (k < L) {
      const size_t at = static_cast<size_t>(k) * n_masks + mask;
      const int t = choice_t[at];
      devs.push_back(types.members[t][used[t]++]);
      k = choice_b[at];
      bounds.push_back(k);
      mask += stride[t];
    }
    Plan pl = Finish(c, bounds, devs);
    if (pl.predicted_step_s < best_total) {
      best_total = pl.predicted_step_s;
      best = std::move(pl);
    }
  }
  return best;
}

}  // namespace

Result<Plan> EvaluatePlan(const PlanProblem& p, int M, const std::vector<int>& bounds, const std::vector<int>& devs) {
  LMS_RETURN_IF_ERROR(CheckProblem(p));
  const int S = static_cast<int>(devs.size());
  if (static_cast<int>(bounds.size()) != S + 1 || bounds.front() != 0 || bounds.back() != p.cost.layers()) {
    return Status::InvalidArgument("plan: boundaries must run from 0 to the layer count, one more than stages");
  }
  const Prefix pre = MakePrefix(p);
  const Ctx c = MakeCtx(p, pre, M);
  Plan pl = Finish(c, bounds, devs);
  for (int s = 0; s < S; ++s) {
    if (pl.stage_memory[s] > p.devices[devs[s]].memory_bytes) {
      return Status::ResourceExhausted(fmt::format("stage {} needs {:.0f} bytes; device {} has {:.0f}", s,
                                                   pl.stage_memory[s], p.devices[devs[s]].name, p.devices[devs[s]].memory_bytes));
    }
  }
  return pl;
}

Result<Plan> PlanPipeline(const PlanProblem& p) {
  LMS_RETURN_IF_ERROR(CheckProblem(p));
  const Prefix pre = MakePrefix(p);
  const DeviceTypes types = GroupDevices(p);
  Plan best;
  best.predicted_step_s = kInf;
  int64_t evaluated = 0;
  const int L = p.cost.layers(), D = static_cast<int>(p.devices.size());
  const int s_min = p.stages > 0 ? p.stages : 1, s_max = p.stages > 0 ? p.stages : std::min(L, D);
  for (int M : p.microbatch_choices) {
    for (int S = s_min; S <= s_max; ++S) {
      Plan pl = SolveForM(p, pre, types, M, S, best.predicted_step_s, &evaluated);
      if (pl.predicted_step_s < best.predicted_step_s) best = std::move(pl);
    }
  }
  if (best.predicted_step_s == kInf) return Status::ResourceExhausted("no stage split fits the devices' memory");
  best.tmax_evaluated = evaluated;
  return best;
}

Result<Plan> BruteForcePlan(const PlanProblem& p) {
  LMS_RETURN_IF_ERROR(CheckProblem(p));
  const int L = p.cost.layers(), D = static_cast<int>(p.devices.size());
  const int s_min = p.stages > 0 ? p.stages : 1, s_max = p.stages > 0 ? p.stages : std::min(L, D);
  Plan best;
  best.predicted_step_s = kInf;
  for (int M : p.microbatch_choices) {
    for (int S = s_min; S <= s_max; ++S) {
      // Every composition of L into S parts (choose S−1 cut points from L−1).
      std::vector<int> cut(L - 1, 0);
      std::fill(cut.end() - (S - 1), cut.end(), 1);
      do {
        std::vector<int> bounds{0};
        for (int i = 0; i < L - 1; ++i)
          if (cut[i]) bounds.push_back(i + 1);
        bounds.push_back(L);
        // Every ordered choice of S distinct devices.
        std::vector<int> perm(D);
        std::iota(perm.begin(), perm.end(), 0);
        do {
          std::vector<int> devs(perm.begin(), perm.begin() + S);
          auto pl = EvaluatePlan(p, M, bounds, devs);
          if (pl.ok() && pl->predicted_step_s < best.predicted_step_s) best = std::move(*pl);
          std::reverse(perm.begin() + S, perm.end());  // skip orders of the unused tail
        } while (std::next_permutation(perm.begin(), perm.end()));
      } while (std::next_permutation(cut.begin(), cut.end()));
    }
  }
  if (best.predicted_step_s == kInf) return Status::ResourceExhausted("no stage split fits the devices' memory");
  return best;
}

}  // namespace lms::train
