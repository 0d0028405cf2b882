// The inter-operator planner against brute-force enumeration, its speed on a 96-layer × 8-device
// table, its advantage on unequal devices, and the simulator against the bubble formula.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <time.h>

#include <chrono>
#include <random>

#include "core/train/planner.h"
#include "core/train/simulate.h"

using namespace lms;
using namespace lms::train;

namespace {

// Random costs: device speeds differ by a factor, layers by ±50%; memory sometimes binding.
PlanProblem RandomProblem(int L, int D, uint64_t seed, bool tight_memory) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.5, 1.5), speed(0.3, 1.0);
  PlanProblem p;
  std::vector<double> sp(D);
  for (auto& s : sp) s = speed(rng);
  for (int l = 0; l < L; ++l) {
    const double base = u(rng) * 1e-6;
    std::vector<double> f(D), b(D);
    for (int d = 0; d < D; ++d) {
      f[d] = base / sp[d];
      b[d] = 2 * base / sp[d];
    }
    p.cost.fwd_s_per_token.push_back(f);
    p.cost.bwd_s_per_token.push_back(b);
    p.cost.weight_bytes.push_back(u(rng) * 1e6);
    p.cost.act_bytes_per_token.push_back(u(rng) * 1e3);
  }
  p.cost.boundary_bytes_per_token = 1000;
  for (int d = 0; d < D; ++d) {
    const double mem = tight_memory ? std::uniform_real_distribution<double>(4e6, 2e7)(rng) : 1e12;
    p.devices.push_back({fmt::format("d{}", d), mem, d % 2});
  }
  p.intra_node = {1e10, 1e-6};
  p.inter_node = {1e9, 1e-5};
  p.batch_tokens = 8 * 128;
  p.seq_len = 128;
  p.microbatch_choices = {1, 2, 4, 8};
  return p;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

TEST_CASE("planner: the DP finds brute force's optimum on small instances", "[train][planner]") {
  int compared = 0;
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    const int L = 3 + static_cast<int>(seed % 5), D = 2 + static_cast<int>(seed % 3);
    PlanProblem p = RandomProblem(L, D, seed, seed % 3 == 0);
    if (seed % 7 == 0) {  // two interchangeable devices (one device type of two in the DP)
      p.devices[D - 1] = p.devices[0];
      p.devices[D - 1].name = "twin";
      for (auto* table : {&p.cost.fwd_s_per_token, &p.cost.bwd_s_per_token})
        for (auto& row : *table) row[D - 1] = row[0];
    }
    if (seed % 4 == 0) p.stages = std::min(L, D);
    if (seed % 5 == 0) p.schedule = ScheduleKind::kGPipe;
    if (seed % 2 == 0) {  // fixed per-micro-batch costs make small micro-batches dearer
      std::mt19937_64 rng(seed);
      p.cost.s_per_microbatch.assign(L, std::vector<double>(D));
      for (auto& row : p.cost.s_per_microbatch)
        for (auto& v : row) v = std::uniform_real_distribution<double>(0, 2e-4)(rng);
      if (seed % 7 == 0)
        for (auto& row : p.cost.s_per_microbatch) row[D - 1] = row[0];
    }
    if (seed % 3 == 1) {  // stages slowed while all run (bound on u_i, sum of alone t_i)
      std::mt19937_64 rng(seed + 1000);
      p.cost.contention.resize(D);
      for (auto& f : p.cost.contention) f = std::uniform_real_distribution<double>(1.0, 2.5)(rng);
      if (seed % 7 == 0) p.cost.contention[D - 1] = p.cost.contention[0];
    }
    auto dp = PlanPipeline(p);
    auto bf = BruteForcePlan(p);
    REQUIRE(dp.ok() == bf.ok());
    if (!dp.ok()) continue;
    INFO("seed " << seed << " L=" << L << " D=" << D);
    CHECK(dp->predicted_step_s == Approx(bf->predicted_step_s).epsilon(1e-12));
    // The plan is what it claims: re-evaluating its split gives its value.
    auto again = EvaluatePlan(p, dp->microbatches, dp->boundaries, dp->devices);
    REQUIRE(again.ok());
    CHECK(again->predicted_step_s == Approx(dp->predicted_step_s).epsilon(1e-12));
    ++compared;
  }
  CHECK(compared >= 100);
}

TEST_CASE("planner: 96 layers on 8 devices plans within a second", "[train][planner]") {
  // Identical devices (Alpa's setting), two kinds (4 fast + 4 slow) and all-distinct devices
  // (8 kinds, 2⁸ device subsets in the DP state). The bound is on the planning thread's CPU
  // time: the test machine is shared, and wall time there also counts other processes' turns.
  for (int kinds : {1, 2, 8}) {
    PlanProblem p = RandomProblem(96, 8, 7, false);
    for (auto* table : {&p.cost.fwd_s_per_token, &p.cost.bwd_s_per_token}) {
      for (auto& row : *table) {
        for (int d = 0; d < 8; ++d) row[d] = row[kinds == 1 ? 0 : (kinds == 2 ? d / 4 * 4 : d)];
      }
    }
    for (auto& d : p.devices) d.node = 0;
    const double c0 = ThreadCpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto plan = PlanPipeline(p);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = ThreadCpuSeconds() - c0;
    REQUIRE(plan.ok());
    WARN(kinds << " device kind(s): planned in " << cpu << " s CPU (" << s << " s wall), " << plan->tmax_evaluated
               << " DP solves, " << plan->devices.size() << " stages, M=" << plan->microbatches);
    CHECK(cpu < 1.0);
  }
}

TEST_CASE("planner: on unequal devices the plan beats the equal-layers split", "[train][planner]") {
  // Two devices, one three times faster: equal halves leave the fast one idle.
  PlanProblem p;
  for (int l = 0; l < 12; ++l) {
    p.cost.fwd_s_per_token.push_back({1e-6, 3e-6});
    p.cost.bwd_s_per_token.push_back({2e-6, 6e-6});
    p.cost.weight_bytes.push_back(1e6);
    p.cost.act_bytes_per_token.push_back(1e3);
  }
  p.devices = {{"fast", 1e12, 0}, {"slow", 1e12, 0}};
  p.batch_tokens = 8 * 64;
  p.seq_len = 64;
  p.microbatch_choices = {8};
  p.stages = 2;
  auto plan = PlanPipeline(p);
  REQUIRE(plan.ok());
  auto equal = EvaluatePlan(p, 8, {0, 6, 12}, {0, 1});
  REQUIRE(equal.ok());
  CHECK(plan->boundaries == std::vector<int>{0, 9, 12});  // 9 layers on the fast device
  CHECK(plan->predicted_step_s < 0.7 * equal->predicted_step_s);
}

TEST_CASE("planner: memory limits are respected", "[train][planner]") {
  PlanProblem p = RandomProblem(8, 2, 3, false);
  p.devices[0].memory_bytes = 4.0 * 1.6e6;  // about one layer's weights + state
  auto plan = PlanPipeline(p);
  REQUIRE(plan.ok());
  for (size_t s = 0; s < plan->devices.size(); ++s) {
    CHECK(plan->stage_memory[s] <= p.devices[plan->devices[s]].memory_bytes);
  }
  p.devices[0].memory_bytes = p.devices[1].memory_bytes = 1.0;
  auto none = PlanPipeline(p);
  REQUIRE(!none.ok());
  CHECK(none.status().code() == StatusCode::kResourceExhausted);
}

TEST_CASE("planner: a stage's memory counts the engine's state per weight byte", "[train][planner]") {
  // One device, 4 layers of 1 MB weights, no activations: 4 MB of weights.
  PlanProblem p;
  for (int l = 0; l < 4; ++l) {
    p.cost.fwd_s_per_token.push_back({1e-6});
    p.cost.bwd_s_per_token.push_back({2e-6});
    p.cost.weight_bytes.push_back(1e6);
    p.cost.act_bytes_per_token.push_back(0.0);
  }
  p.devices = {{"gpu", 18e6, 0}};  // room for 4.5 bytes of state a weight byte
  p.batch_tokens = 64;
  p.seq_len = 64;
  p.microbatch_choices = {1};
  p.stages = 1;
  auto fits = PlanPipeline(p);  // 4.0 by default: weights, gradients, Adam m and v
  REQUIRE(fits.ok());
  CHECK(fits->stage_memory[0] == Approx(16e6));
  p.cost.state_per_weight_byte = 4.75;  // the CUDA engine in bf16 mode
  auto tight = PlanPipeline(p);
  REQUIRE(!tight.ok());
  CHECK(tight.status().code() == StatusCode::kResourceExhausted);
}

TEST_CASE("simulator: equal stages and free links give the textbook bubble", "[train][planner]") {
  for (auto kind : {ScheduleKind::kGPipe, ScheduleKind::k1F1B}) {
    for (int S : {1, 2, 4}) {
      for (int M : {1, 4, 8}) {
        std::vector<SimStage> st(S, SimStage{1.0, 2.0, 0});
        auto r = SimulatePipeline(st, std::vector<double>(S, 0.0), kind, M);
        INFO(ScheduleName(kind) << " S=" << S << " M=" << M);
        CHECK(r.step_s == Approx(3.0 * (M + S - 1)));
        CHECK(r.bubble == Approx(TheoreticalBubble(S, M)));
        CHECK(static_cast<int>(r.events.size()) == 2 * S * M);
      }
    }
  }
  // Link time delays the pipeline: one hop of 0.5 s each way on 2 stages adds about 1 s.
  std::vector<SimStage> st(2, SimStage{1.0, 2.0, 0});
  auto r = SimulatePipeline(st, {0.5}, ScheduleKind::k1F1B, 1);
  CHECK(r.step_s == Approx(3.0 * 2 + 1.0));
}

TEST_CASE("simulator: described clusters plan and simulate", "[train][planner]") {
  for (const char* kind : {"8xh100-nvlink", "2x8xh100-100gbe", "h100+a100"}) {
    auto c = NamedCluster(kind);
    REQUIRE(c.ok());
    CHECK(!c->devices.empty());
  }
  CHECK(!NamedCluster("nonsense").ok());
}
