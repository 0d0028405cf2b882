// Pipeline-parallel training equals single-stage training, and the schedules keep to their
// memory bounds.
#include <catch2/catch.hpp>

#include <cmath>

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
