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
      bool same = p.devices[r].memory_bytes == p.devices[d].memory_bytes && p.devices[r].node == p.devices[d].node &&
                  (p.cost.contention.empty() || p.cost.contention[r] == p.cost.contention[d]);
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

double Contention(const PlanProblem& p, int d) { return p.cost.contention.empty() ? 1.0 : p.cost.contention[d]; }

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
  return c.p.cost.state_per_weight_byte * c.pre.Weight(a, b) + in_flight * c.pre.Act(a, b) * c.mb_tokens;
}

Status CheckProblem(const PlanProblem& p) {
  const int L = p.cost.layers(), D = static_cast<int>(p.devices.size());
  if (L < 1) return Status::InvalidArgument("plan: no layers");
  if (D < 1) return Status::InvalidArgument("plan: no devices");
  if (p.schedule == ScheduleKind::kInterleaved) {
    return Status::InvalidArgument("plan: the planner chooses stages for gpipe and 1f1b; the interleaved schedule "
                                   "takes an equal split of the layers into chunks");
  }
  if (static_cast<int>(p.cost.fwd_s_per_token.size()) != L || static_cast<int>(p.cost.bwd_s_per_token.size()) != L ||
      static_cast<int>(p.cost.act_bytes_per_token.size()) != L) {
    return Status::InvalidArgument("plan: cost table columns differ in length");
  }
  if (!p.cost.s_per_microbatch.empty() && static_cast<int>(p.cost.s_per_microbatch.size()) != L) {
    return Status::InvalidArgument("plan: per-micro-batch costs given for some layers only");
  }
  if (!p.cost.contention.empty()) {
    if (static_cast<int>(p.cost.contention.size()) != D) return Status::InvalidArgument("plan: contention given for the wrong device count");
    for (double f : p.cost.contention)
      if (!(f > 0)) return Status::InvalidArgument("plan: contention factors must be positive");
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
    const double alone = StageTime(c, pl.boundaries[s], pl.boundaries[s + 1], pl.devices[s], s == S - 1);
    const double t = alone * Contention(c.p, pl.devices[s]);
    pl.stage_s.push_back(t);
    pl.stage_memory.push_back(StageMemory(c, pl.boundaries[s], pl.boundaries[s + 1], s, S));
    sum += alone;
    mx = std::max(mx, t);
  }
  pl.predicted_step_s = sum + (c.M - 1) * mx + c.p.cost.step_fixed_s;
  return pl;
}

// Alpa's DP for one M. H[mask][k]: least Σ t_i over stages covering layers k..L−1 that use
// exactly the devices counted in `mask` (a suffix of the pipeline). Indexing by the suffix makes
// each stage know how many stages follow it, which is what its 1F1B activation memory needs.
// Everything that does not depend on the bound t_max is tabulated once per M: each stage's time
// for every (type, first layer, end layer), and the furthest end layer each (type, first layer,
// stages from the end) fits in memory (memory only grows with the stage, so that is a prefix).
class MDp {
 public:
  MDp(const PlanProblem& p, const Prefix& pre, const DeviceTypes& types, int M)
      : c_(MakeCtx(p, pre, M)), types_(types), L_(p.cost.layers()), NT_(static_cast<int>(types.members.size())) {
    radix_.resize(NT_);
    stride_.resize(NT_);
    n_masks_ = 1;
    for (int t = 0; t < NT_; ++t) {
      radix_[t] = static_cast<int>(types.members[t].size()) + 1;
      stride_[t] = n_masks_;
      n_masks_ *= radix_[t];
    }
    used_.assign(n_masks_, 0);
    present_.assign(n_masks_, {});
    for (int m = 0; m < n_masks_; ++m) {
      for (int t = 0; t < NT_; ++t) {
        const int n = (m / stride_[t]) % radix_[t];
        used_[m] += n;
        if (n > 0) present_[m].push_back(t);
      }
    }
    const int D = static_cast<int>(p.devices.size());
    s_min_ = p.stages > 0 ? p.stages : 1;
    s_max_ = p.stages > 0 ? p.stages : std::min(L_, D);
    const size_t row = static_cast<size_t>(L_ + 1);
    ts_.assign(static_cast<size_t>(NT_) * L_ * row, kInf);
    us_.assign(ts_.size(), kInf);
    mem_end_.assign(static_cast<size_t>(NT_) * L_ * (s_max_ + 1), 0);
    for (int t = 0; t < NT_; ++t) {
      const int d = types.members[t][0];
      for (int k = 0; k < L_; ++k) {
        double* ts = &ts_[(static_cast<size_t>(t) * L_ + k) * row];
        double* us = &us_[(static_cast<size_t>(t) * L_ + k) * row];
        for (int b = k + 1; b <= L_; ++b) {
          ts[b] = StageTime(c_, k, b, d, b == L_);
          us[b] = ts[b] * Contention(p, d);
        }
        for (int sh = 1; sh <= s_max_; ++sh) {
          int e = k;
          while (e < L_ && StageMemory(c_, k, e + 1, 0, sh) <= p.devices[d].memory_bytes) ++e;
          mem_end_[(static_cast<size_t>(t) * L_ + k) * (s_max_ + 1) + sh] = e;
        }
      }
    }
    // lb_[k]: a lower bound on Σ u_i over any stages covering layers k..L−1 (each layer on its
    // fastest type, no transfers), slightly relaxed so rounding never cuts a feasible state.
    lb_.assign(row, 0.0);
    for (int l = L_ - 1; l >= 0; --l) {
      double fastest = kInf;
      for (int t = 0; t < NT_; ++t) {
        const int d = types.members[t][0];
        fastest = std::min(fastest, (pre.Time(d, l, l + 1) * c_.mb_tokens + pre.Fixed(d, l, l + 1)) * Contention(p, d));
      }
      lb_[l] = lb_[l + 1] + fastest;
    }
    for (double& v : lb_) v *= 1.0 - 1e-9;
    H_.resize(static_cast<size_t>(n_masks_) * row);
    choice_b_.resize(H_.size());
    choice_t_.resize(H_.size());
  }

  const Ctx& ctx() const { return c_; }
  double Lb0() const { return lb_[0]; }
  int MaxStages() const { return s_max_; }

  // Every stage time that could be the maximum, ascending.
  std::vector<double> Candidates() const {
    std::vector<double> cand;
    for (int a = 0; a < L_; ++a)
      for (int b = a + 1; b <= L_; ++b)
        for (int t = 0; t < NT_; ++t) cand.push_back(us_[(static_cast<size_t>(t) * L_ + a) * (L_ + 1) + b]);
    std::sort(cand.begin(), cand.end());
    cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
    return cand;
  }

  // Least Σ t_i with every u_i ≤ tmax (kInf when none); Rebuild() then gives the split.
  double Solve(double tmax) {
    const size_t row = static_cast<size_t>(L_ + 1);
    std::fill(H_.begin(), H_.end(), kInf);
    H_[0 * row + L_] = 0.0;
    // n stages of at most tmax each cannot cover layers b.. when n·tmax < lb_[b]: the first b
    // they can cover (lb_ falls with b).
    std::vector<int> first_b(s_max_ + 1, L_);
    for (int n = 1; n <= s_max_; ++n) {
      int b = 0;
      while (b < L_ && n * tmax < lb_[b]) ++b;
      first_b[n] = b;
    }
    for (int k = L_ - 1; k >= 0; --k) {
      for (int mask = 1; mask < n_masks_; ++mask) {
        const int stages = used_[mask];
        if (stages > s_max_ || stages > L_ - k) continue;  // every stage needs a layer
        if (k < first_b[stages]) continue;                 // too much work left for them
        double best = kInf;
        int bb = -1, bt = -1;
        for (const int t : present_[mask]) {  // this stage's type
          const int rest_mask = mask - stride_[t];
          const int after = stages - 1;  // stages after this one
          const double* ts = &ts_[(static_cast<size_t>(t) * L_ + k) * row];
          const double* us = &us_[(static_cast<size_t>(t) * L_ + k) * row];
          const double* rest = &H_[static_cast<size_t>(rest_mask) * row];
          // Memory admits ends up to mem_end; the later stages need a layer each.
          const int end = std::min(mem_end_[(static_cast<size_t>(t) * L_ + k) * (s_max_ + 1) + stages], L_ - after);
          if (after == 0) {  // the last stage ends the model
            if (end == L_ && us[L_] <= tmax && ts[L_] < best) {
              best = ts[L_];
              bb = L_;
              bt = t;
            }
            continue;
          }
          for (int b = std::max(k + 1, first_b[after]); b <= end; ++b) {
            if (us[b] > tmax) break;  // grows with b (before the last layer)
            const double v = ts[b] + rest[b];
            if (v < best) {
              best = v;
              bb = b;
              bt = t;
            }
          }
        }
        const size_t at = static_cast<size_t>(mask) * row + k;
        H_[at] = best;
        choice_b_[at] = bb;
        choice_t_[at] = bt;
      }
    }
    best_mask_ = -1;
    double v = kInf;
    for (int mask = 1; mask < n_masks_; ++mask) {
      if (used_[mask] < s_min_ || used_[mask] > s_max_) continue;
      const double h = H_[static_cast<size_t>(mask) * row];
      if (h < v) {
        v = h;
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
      const size_t at = static_cast<size_t>(mask) * (L_ + 1) + k;
      const int t = choice_t_[at];
      devs.push_back(types_.members[t][used[t]++]);
      k = choice_b_[at];
      bounds.push_back(k);
      mask -= stride_[t];
    }
    return Finish(c_, bounds, devs);
  }

 private:
  Ctx c_;
  const DeviceTypes& types_;
  int L_, NT_, n_masks_ = 1, s_min_ = 1, s_max_ = 1, best_mask_ = -1;
  std::vector<int> radix_, stride_, used_;
  std::vector<std::vector<int>> present_;  // [mask] types with at least one device in it
  std::vector<double> ts_;    // [type][k][b] stage time of layers [k, b), alone
  std::vector<double> us_;    // [type][k][b] the same under contention (what t_max bounds)
  std::vector<int> mem_end_;  // [type][k][stages from the end] furthest end that fits memory
  std::vector<double> lb_;    // [k] lower bound on the time of layers k..L−1
  std::vector<double> H_;     // [mask][k]
  std::vector<int> choice_b_, choice_t_;
};

// Enumerates the bound t_max over the candidate stage times as Alpa does, but prunes with the
// structure of H(t) (the least Σ t_i under bound t), which never increases with t:
//  - below the smallest feasible bound nothing fits (found by binary search);
//  - a solve at bound c returns a plan whose largest stage time m ≤ c is itself a candidate;
//    that plan stays optimal for every bound in [m, c], so H is flat there and those
//    candidates need no solve of their own;
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
  if (M == 1) {  // the objective is Σ t_i alone
    ++*evaluated;
    if (dp.Solve(kInf) == kInf) return best;
    Plan pl = dp.Rebuild();
    if (pl.predicted_step_s < best_total) best = std::move(pl);
    return best;
  }
  const std::vector<double> cand = dp.Candidates();
  std::vector<double> H(cand.size(), -1.0);
  // Solves at cand[i]; returns the index of the found plan's largest stage time (≤ i), where
  // H takes the same value.
  auto eval = [&](size_t i) -> size_t {
    ++*evaluated;
    H[i] = dp.Solve(cand[i]);
    if (H[i] == kInf) return i;
    Plan pl = dp.Rebuild();
    const double m = *std::max_element(pl.stage_s.begin(), pl.stage_s.end());
    size_t j = static_cast<size_t>(std::lower_bound(cand.begin(), cand.end(), m) - cand.begin());
    if (j > i || cand[j] != m) j = i;  // not expected; fall back to the solved point alone
    H[j] = H[i];
    if (pl.predicted_step_s < best_total) {
      best_total = pl.predicted_step_s;
      best = std::move(pl);
    }
    return j;
  };
  // The largest candidate admits every stage: if nothing fits there, nothing fits at all.
  const size_t top = eval(cand.size() - 1);
  const double h_inf = H.back();
  if (h_inf == kInf) return best;
  // Bounds above cap cannot win: such a plan costs at least h_inf + (M−1)·t_max. Bounds below
  // lb0 / S cannot hold S stages that cover every layer.
  auto first_above = [&](double t) { return static_cast<size_t>(std::upper_bound(cand.begin(), cand.end(), t) - cand.begin()); };
  const size_t n_above = first_above((best_total - h_inf) / (M - 1));
  if (n_above == 0) return best;
  const size_t cap = n_above - 1;
  size_t lo = std::min(cap, static_cast<size_t>(std::lower_bound(cand.begin(), cand.end(), dp.Lb0() / dp.MaxStages()) - cand.begin()));
  size_t hi = cap >= top ? top : eval(cap);
  if (H[hi] == kInf) return best;
  while (lo < hi) {  // the least feasible bound
    const size_t mid = (lo + hi) / 2;
    const size_t j = eval(mid);
    if (H[mid] < kInf) hi = j; else lo = mid + 1;
    if (h_inf + (M - 1) * cand[lo] >= best_total) return best;
  }
  // Intervals between neighbouring candidates in [lo, cap] where H is known (H[cap] is: it is
  // either solved or in the flat run of the top solve).
  if (cap >= top) H[cap] = h_inf;
  std::vector<std::pair<size_t, size_t>> stack;
  std::vector<size_t> known;
  for (size_t i = lo; i <= cap; ++i)
    if (H[i] >= 0) known.push_back(i);
  for (size_t x = 0; x + 1 < known.size(); ++x) stack.push_back({known[x], known[x + 1]});
  while (!stack.empty()) {
    auto [a, b] = stack.back();
    stack.pop_back();
    if (b - a <= 1 || H[a] == H[b]) continue;
    if (H[b] + (M - 1) * cand[a + 1] >= best_total) continue;
    const size_t mid = (a + b) / 2;
    const size_t j = eval(mid);
    stack.push_back({mid, b});
    if (j > a) stack.push_back({a, j});  // [j, mid] is flat; when j <= a, so is [a, mid]
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
  // Many micro-batches usually win (a smaller bubble); trying them first tightens the bound
  // that prunes the rest.
  std::vector<int> ms = p.microbatch_choices;
  std::sort(ms.rbegin(), ms.rend());
  for (int M : ms) {
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
