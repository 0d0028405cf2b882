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
               p.cost.bwd_s_per_token[l][r] == p.cost.bwd_s_per_token[l][d] &&
               (p.cost.s_per_microbatch.empty() || p.cost.s_per_microbatch[l][r] == p.cost.s_per_microbatch[l][d]);
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
  std::vector<std::vector<double>> fixed; // [device][l] per-micro-batch costs
  std::vector<double> weight, act;        // [l]
  double Time(int d, int a, int b) const { return time[d][b] - time[d][a]; }
  double Fixed(int d, int a, int b) const { return fixed[d][b] - fixed[d][a]; }
  double Weight(int a, int b) const { return weight[b] - weight[a]; }
  double Act(int a, int b) const { return act[b] - act[a]; }
};

Prefix MakePrefix(const PlanProblem& p) {
  const int L = p.cost.layers(), D = static_cast<int>(p.devices.size());
  Prefix x;
  x.time.assign(D, std::vector<double>(L + 1, 0.0));
  x.fixed.assign(D, std::vector<double>(L + 1, 0.0));
  x.weight.assign(L + 1, 0.0);
  x.act.assign(L + 1, 0.0);
  for (int l = 0; l < L; ++l) {
    for (int d = 0; d < D; ++d) {
      x.time[d][l + 1] = x.time[d][l] + p.cost.fwd_s_per_token[l][d] + p.cost.bwd_s_per_token[l][d];
      x.fixed[d][l + 1] = x.fixed[d][l] + (p.cost.s_per_microbatch.empty() ? 0.0 : p.cost.s_per_microbatch[l][d]);
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
  return c.pre.Time(d, a, b) * c.mb_tokens + c.pre.Fixed(d, a, b) + (last ? 0.0 : c.send_s);
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
  if (!p.cost.s_per_microbatch.empty() && static_cast<int>(p.cost.s_per_microbatch.size()) != L) {
    return Status::InvalidArgument("plan: per-micro-batch costs given for some layers only");
  }
  for (int l = 0; l < L; ++l) {
    if (!p.cost.s_per_microbatch.empty() && static_cast<int>(p.cost.s_per_microbatch[l].size()) != D) {
      return Status::InvalidArgument(fmt::format("plan: layer {} has per-micro-batch costs for the wrong device count", l));
    }
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

// Alpa's DP for one M. H[k][mask]: least Σ t_i over stages covering layers k..L−1 that use
// exactly the devices counted in `mask` (a suffix of the pipeline). Indexing by the suffix makes
// each stage know how many stages follow it, which is what its 1F1B activation memory needs.
class MDp {
 public:
  MDp(const PlanProblem& p, const Prefix& pre, const DeviceTypes& types, int M)
      : p_(p), c_(MakeCtx(p, pre, M)), types_(types), L_(p.cost.layers()), NT_(static_cast<int>(types.members.size())) {
    radix_.resize(NT_);
    stride_.resize(NT_);
    n_masks_ = 1;
    for (int t = 0; t < NT_; ++t) {
      radix_[t] = static_cast<int>(types.members[t].size()) + 1;
      stride_[t] = n_masks_;
      n_masks_ *= radix_[t];
    }
    used_.assign(n_masks_, 0);
    for (int m = 0; m < n_masks_; ++m)
      for (int t = 0; t < NT_; ++t) used_[m] += (m / stride_[t]) % radix_[t];
    const int D = static_cast<int>(p.devices.size());
    s_min_ = p.stages > 0 ? p.stages : 1;
    s_max_ = p.stages > 0 ? p.stages : std::min(L_, D);
    H_.resize(static_cast<size_t>(L_ + 1) * n_masks_);
    choice_b_.resize(H_.size());
    choice_t_.resize(H_.size());
  }

  const Ctx& ctx() const { return c_; }

  // Every stage time that could be the maximum, ascending.
  std::vector<double> Candidates() const {
    std::vector<double> cand;
    for (int a = 0; a < L_; ++a)
      for (int b = a + 1; b <= L_; ++b)
        for (int t = 0; t < NT_; ++t) cand.push_back(StageTime(c_, a, b, types_.members[t][0], b == L_));
    std::sort(cand.begin(), cand.end());
    cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
    return cand;
  }

  // Least Σ t_i with every t_i ≤ tmax (kInf when none); Rebuild() then gives the split.
  double Solve(double tmax) {
    std::fill(H_.begin(), H_.end(), kInf);
    H_[static_cast<size_t>(L_) * n_masks_ + 0] = 0.0;
    for (int k = L_ - 1; k >= 0; --k) {
      for (int mask = 1; mask < n_masks_; ++mask) {
        if (used_[mask] > s_max_) continue;
        double best = kInf;
        int bb = -1, bt = -1;
        for (int t = 0; t < NT_; ++t) {
          if ((mask / stride_[t]) % radix_[t] == 0) continue;  // this stage's type is not in the mask
          const int d = types_.members[t][0];
          const int rest_mask = mask - stride_[t];
          const int after = used_[rest_mask];  // stages after this one
          const int S_here = after + 1;        // this stage is S_here-th from the end
          for (int b = k + 1; b <= L_; ++b) {
            const double compute = c_.pre.Time(d, k, b) * c_.mb_tokens + c_.pre.Fixed(d, k, b);
            if (compute > tmax) break;  // grows with b
            if ((b == L_) != (after == 0)) continue;  // the last stage ends the model
            const double rest = H_[static_cast<size_t>(b) * n_masks_ + rest_mask];
            if (rest == kInf) continue;
            const double ts = StageTime(c_, k, b, d, b == L_);
            if (ts > tmax) continue;
            if (StageMemory(c_, k, b, 0, S_here) > p_.devices[d].memory_bytes) continue;
            if (ts + rest < best) {
              best = ts + rest;
              bb = b;
              bt = t;
            }
          }
        }
        const size_t at = static_cast<size_t>(k) * n_masks_ + mask;
        H_[at] = best;
        choice_b_[at] = bb;
        choice_t_[at] = bt;
      }
    }
    best_mask_ = -1;
    double v = kInf;
    for (int mask = 1; mask < n_masks_; ++mask) {
      if (used_[mask] < s_min_ || used_[mask] > s_max_) continue;
      if (H_[mask] < v) {
        v = H_[mask];
        best_mask_ = mask;
      }
    }
    return v;
  }

  // The split of the last Solve: device = next unused member of each chosen type.
  Plan Rebuild() const {
    std::vector<int> bounds{0}, devs, used(NT_, 0);
    int k = 0, mask = best_mask_;
    while (k < L_) {
      const size_t at = static_cast<size_t>(k) * n_masks_ + mask;
      const int t = choice_t_[at];
      devs.push_back(types_.members[t][used[t]++]);
      k = choice_b_[at];
      bounds.push_back(k);
      mask -= stride_[t];
    }
    return Finish(c_, bounds, devs);
  }

 private:
  const PlanProblem& p_;
  Ctx c_;
  const DeviceTypes& types_;
  int L_, NT_, n_masks_ = 1, s_min_ = 1, s_max_ = 1, best_mask_ = -1;
  std::vector<int> radix_, stride_, used_;
  std::vector<double> H_;
  std::vector<int> choice_b_, choice_t_;
};

// Enumerates the bound t_max over the candidate stage times as Alpa does, but prunes with the
// structure of H(t) (the least Σ t_i under bound t), which never increases with t:
//  - below the smallest feasible bound nothing fits (found by binary search);
//  - on an interval [a, b] of candidates, every plan inside costs at least
//    H(b) + (M−1)·t_{a+1}; intervals that cannot beat the best plan are skipped, and where
//    H(a) = H(b) nothing inside can beat the plan found at a. Otherwise the interval is halved.
// The result is exactly the optimum of full enumeration, with far fewer DP solves.
Plan SolveForM(const PlanProblem& p, const Prefix& pre, const DeviceTypes& types, int M, double best_so_far,
               int64_t* evaluated) {
  MDp dp(p, pre, types, M);
  Plan best;
  best.predicted_step_s = kInf;
  double best_total = best_so_far;
  const double h_inf = dp.Solve(kInf);
  ++*evaluated;
  if (h_inf == kInf) return best;
  auto consider = [&](double v) {
    if (v == kInf) return;
    Plan pl = dp.Rebuild();
    if (pl.predicted_step_s < best_total) {
      best_total = pl.predicted_step_s;
      best = std::move(pl);
    }
  };
  if (M == 1) {  // the objective is Σ t_i alone
    consider(h_inf);
    return best;
  }
  const std::vector<double> cand = dp.Candidates();
  std::vector<double> H(cand.size(), -1.0);
  auto eval = [&](size_t i) {
    if (H[i] < 0) {
      ++*evaluated;
      H[i] = dp.Solve(cand[i]);
      consider(H[i]);
    }
    return H[i];
  };
  size_t lo = 0, hi = cand.size() - 1;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (eval(mid) < kInf) hi = mid; else lo = mid + 1;
  }
  eval(lo);
  H.back() = h_inf;  // the largest candidate admits every stage
  std::vector<std::pair<size_t, size_t>> stack{{lo, cand.size() - 1}};
  while (!stack.empty()) {
    auto [a, b] = stack.back();
    stack.pop_back();
    if (b - a <= 1 || H[a] == H[b]) continue;
    if (H[b] + (M - 1) * cand[a + 1] >= best_total) continue;
    const size_t mid = (a + b) / 2;
    eval(mid);
    stack.push_back({mid, b});
    stack.push_back({a, mid});
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
  for (int M : p.microbatch_choices) {
    Plan pl = SolveForM(p, pre, types, M, best.predicted_step_s, &evaluated);
    if (pl.predicted_step_s < best.predicted_step_s) best = std::move(pl);
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
