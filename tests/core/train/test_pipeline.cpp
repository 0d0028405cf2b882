// Pipeline-parallel training equals single-stage training, and the schedules keep to their
// memory bounds.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/train/simulate.h"
#include "tests/core/train/train_test_util.h"

using namespace lms;
using namespace lms::train;
using namespace lms::train::test;

TEST_CASE("train: schedules run every forward before its backward", "[train][pipeline]") {
  for (auto kind : {ScheduleKind::kGPipe, ScheduleKind::k1F1B}) {
    for (int S : {1, 2, 4}) {
      for (int M : {1, 3, 8}) {
        auto ops = MakeSchedule(kind, S, M);
        REQUIRE(static_cast<int>(ops.size()) == S);
        for (int s = 0; s < S; ++s) {
          std::vector<int> f(M, 0), b(M, 0);
          int live = 0, peak = 0;
          for (const PipeOp& o : ops[s]) {
            if (o.forward) {
              CHECK(f[o.microbatch]++ == 0);
              peak = std::max(peak, ++live);
            } else {
              CHECK(f[o.microbatch] == 1);
              CHECK(b[o.microbatch]++ == 0);
              --live;
            }
          }
          CHECK(live == 0);
          if (kind == ScheduleKind::k1F1B) CHECK(peak <= std::min(M, S - s));
          if (kind == ScheduleKind::kGPipe) CHECK(peak == M);
        }
      }
    }
  }
  CHECK(TheoreticalBubble(4, 8) == Approx(3.0 / 11.0));
  CHECK(EqualSplit(10, 4) == std::vector<int>{0, 2, 5, 7, 10});
}

TEST_CASE("train: the interleaved schedule runs every chunk's forward before its backward", "[train][pipeline]") {
  for (int S : {1, 2, 3, 4}) {
    for (int V : {2, 3}) {
      for (int M : {S, 2 * S, 4 * S}) {
        INFO("S=" << S << " V=" << V << " M=" << M);
        auto ops = MakeSchedule(ScheduleKind::kInterleaved, S, M, V);
        REQUIRE(static_cast<int>(ops.size()) == S);
        for (int s = 0; s < S; ++s) {
          std::vector<std::vector<int>> f(V, std::vector<int>(M, 0)), b = f;
          std::vector<int> next_b(V, 0);
          for (const PipeOp& o : ops[s]) {
            REQUIRE(o.chunk >= 0);
            REQUIRE(o.chunk < V);
            REQUIRE(o.microbatch >= 0);
            REQUIRE(o.microbatch < M);
            if (o.forward) {
              CHECK(f[o.chunk][o.microbatch]++ == 0);
            } else {
              CHECK(f[o.chunk][o.microbatch] == 1);
              CHECK(b[o.chunk][o.microbatch]++ == 0);
              CHECK(o.microbatch == next_b[o.chunk]++);  // gradients sum in micro-batch order
            }
          }
          for (int v = 0; v < V; ++v) CHECK(next_b[v] == M);
        }
        // Equal chunks, free links: no deadlock, and the bubble of Megatron-LM's analysis,
        // (S−1)·(t_f+t_b) over V·M·(t_f+t_b) of work.
        std::vector<SimStage> st(S * V, SimStage{1.0, 2.0, 0});
        auto r = SimulatePipeline(st, std::vector<double>(S * V, 0.0), ScheduleKind::kInterleaved, M, V);
        CHECK(!r.deadlocked);
        CHECK(static_cast<int>(r.events.size()) == 2 * S * V * M);
        CHECK(r.step_s == Approx(3.0 * (V * M + S - 1)));
        CHECK(r.bubble == Approx(TheoreticalBubble(S, M, V)));
        if (S > 1) {  // and less than 1F1B's with the same work per device
          std::vector<SimStage> whole(S, SimStage{1.0 * V, 2.0 * V, 0});
          CHECK(r.step_s < SimulatePipeline(whole, std::vector<double>(S, 0.0), ScheduleKind::k1F1B, M).step_s);
        }
      }
    }
  }
  CHECK(TheoreticalBubble(4, 8, 2) == Approx(3.0 / 19.0));
}

TEST_CASE("train: interleaved pipeline training equals single-stage training", "[train][pipeline]") {
  const ModelShape s = TinyShape();  // 4 layers
  const ParamLayout layout = ParamLayout::For(s);
  const std::vector<float> p = RandomParams(s, layout, 23, 0.2f);
  const int B = 8;
  auto in = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 33);
  auto tg = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 34);
  const LossAndGrads ref = SingleStage(s, layout, p, in, tg, B);
  double gmax = 0;
  for (float g : ref.grads) gmax = std::max(gmax, double{std::fabs(g)});
  struct Case { int S, V, M; };
  for (const Case c : {Case{2, 2, 2}, Case{2, 2, 4}, Case{2, 2, 8}, Case{1, 2, 4}, Case{1, 4, 2}}) {
    INFO("S=" << c.S << " V=" << c.V << " M=" << c.M);
    PipelineOptions o;
    o.boundaries = EqualSplit(s.n_layers, c.S * c.V);
    o.threads.assign(c.S, 1);
    o.schedule = ScheduleKind::kInterleaved;
    o.chunks = c.V;
    o.microbatches = c.M;
    o.micro_batch_size = B / c.M;
    auto pipe = Pipeline::Create(s, layout, o);
    REQUIRE(pipe.ok());
    CHECK((*pipe)->stages() == c.S);
    std::vector<float> g(p.size(), 0.0f);
    auto rep = (*pipe)->ForwardBackward(p, g, in.data(), tg.data(), 1.0f / (B * s.seq_len));
    REQUIRE(rep.ok());
    CHECK(rep->tokens == int64_t{B} * s.seq_len);
    CHECK(std::fabs(rep->loss_sum / rep->tokens - ref.loss) < 1e-6);
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, double{std::fabs(g[i] - ref.grads[i])});
    CHECK(worst <= 1e-5 * gmax);
    CHECK(static_cast<int>(rep->events.size()) == 2 * c.S * c.V * c.M);
    REQUIRE(static_cast<int>(rep->busy_s.size()) == c.S);
    for (int d = 0; d < c.S; ++d) {
      // Megatron-LM's bound on activations in flight: the warm-up forwards plus one.
      CHECK(rep->peak_in_flight[d] <= std::min(c.M * c.V, 2 * (c.S - d - 1) + (c.V - 1) * c.S + 1));
    }
    // Validation passes (forward only) agree too.
    auto fwd = (*pipe)->Forward(p, in.data(), tg.data());
    REQUIRE(fwd.ok());
    CHECK(std::fabs(fwd->loss_sum / fwd->tokens - ref.loss) < 1e-6);
  }
  PipelineOptions bad;
  bad.boundaries = EqualSplit(s.n_layers, 4);
  bad.schedule = ScheduleKind::kInterleaved;
  bad.chunks = 2;
  bad.microbatches = 3;  // not a multiple of the 2 stages
  auto r = Pipeline::Create(s, layout, bad);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("multiples of the stages") != std::string::npos);
  bad.microbatches = 2;
  bad.chunks = 1;
  CHECK(!Pipeline::Create(s, layout, bad).ok());
  bad.chunks = 3;  // 4 ranges do not divide into 3 chunks per stage
  CHECK(!Pipeline::Create(s, layout, bad).ok());
  bad.schedule = ScheduleKind::k1F1B;
  bad.chunks = 2;
  CHECK(!Pipeline::Create(s, layout, bad).ok());
}

TEST_CASE("train: pipeline training equals single-stage training", "[train][pipeline]") {
  const ModelShape s = TinyShape();  // 4 layers
  const ParamLayout layout = ParamLayout::For(s);
  const std::vector<float> p = RandomParams(s, layout, 21, 0.2f);
  const int B = 8;
  auto in = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 31);
  auto tg = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 32);
  const LossAndGrads ref = SingleStage(s, layout, p, in, tg, B);
  double gmax = 0;
  for (float g : ref.grads) gmax = std::max(gmax, double{std::fabs(g)});
  for (auto kind : {ScheduleKind::kGPipe, ScheduleKind::k1F1B}) {
    for (int S : {1, 2, 4}) {
      for (int M : {1, 2, 4, 8}) {
        PipelineOptions o;
        o.boundaries = EqualSplit(s.n_layers, S);
        o.threads.assign(S, S == 1 ? 2 : 1);
        o.schedule = kind;
        o.microbatches = M;
        o.micro_batch_size = B / M;
        auto pipe = Pipeline::Create(s, layout, o);
        REQUIRE(pipe.ok());
        std::vector<float> g(p.size(), 0.0f);
        auto rep = (*pipe)->ForwardBackward(p, g, in.data(), tg.data(), 1.0f / (B * s.seq_len));
        REQUIRE(rep.ok());
        INFO(ScheduleName(kind) << " S=" << S << " M=" << M);
        CHECK(rep->tokens == int64_t{B} * s.seq_len);
        CHECK(std::fabs(rep->loss_sum / rep->tokens - ref.loss) < 1e-6);
        double worst = 0;
        for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, double{std::fabs(g[i] - ref.grads[i])});
        CHECK(worst <= 1e-5 * gmax);
        CHECK(static_cast<int>(rep->events.size()) == 2 * S * M);
        for (int st = 0; st < S; ++st) {
          if (kind == ScheduleKind::k1F1B) CHECK(rep->peak_in_flight[st] <= std::min(M, S - st));
        }
        CHECK(rep->Bubble() >= 0.0);
        CHECK(rep->Bubble() < 1.0);
      }
    }
  }
}

TEST_CASE("train: pipeline rejects bad splits and reports stage errors", "[train][pipeline]") {
  const ModelShape s = TinyShape();
  const ParamLayout layout = ParamLayout::For(s);
  PipelineOptions o;
  o.boundaries = {0, 2, 2, 4};
  CHECK(!Pipeline::Create(s, layout, o).ok());
  o.boundaries = {0, 3};
  CHECK(!Pipeline::Create(s, layout, o).ok());
  o.boundaries = {0, 2, 4};
  o.microbatches = 2;
  auto pipe = Pipeline::Create(s, layout, o);
  REQUIRE(pipe.ok());
  std::vector<float> p;
  InitParams(s, layout, 1, p);
  std::vector<float> g(p.size(), 0.0f);
  auto in = RandomTokens(2 * s.seq_len, s.n_vocab, 1);
  auto tg = in;
  in[s.seq_len + 1] = s.n_vocab + 5;  // a bad token in the second micro-batch
  auto rep = (*pipe)->ForwardBackward(p, g, in.data(), tg.data(), 1.0f);
  REQUIRE(!rep.ok());
  CHECK(rep.status().message().find("outside the vocabulary") != std::string::npos);
  // Usable again afterwards.
  in[s.seq_len + 1] = 1;
  CHECK((*pipe)->ForwardBackward(p, g, in.data(), tg.data(), 1.0f).ok());
}
