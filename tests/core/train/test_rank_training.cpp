// Multi-process pipeline training on the CPU: one stage per rank of a TCP rank group. Threads
// stand in for the processes (each rank has its own group connection over localhost, its own
// Trainer and engine, and shares nothing else), and the run must equal one process running the
// same pipeline: per-step losses and gradient norms, validation loss, and the gathered weights
// and moments, for 2 and 4 ranks, 1F1B and GPipe, the tied head on another rank than the
// embedding. Tolerances: 1e-9 relative on losses (the same arithmetic; only the gradient norm's
// partial sums are added in another order, which can change the clip factor in its last bits),
// 1e-6 on weights. A rank that fails makes every rank fail instead of hanging.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "core/net/rank_group.h"
#include "tests/core/net/rank_test_util.h"
#include "core/train/trainer.h"
#include "tests/core/train/train_test_util.h"

using namespace lms;
using namespace lms::train;
using namespace lms::train::test;

namespace {

TrainerConfig Config(int stages, ScheduleKind kind) {
  TrainerConfig c;
  c.shape = TinyShape();
  c.optim.lr = 3e-3f;
  c.optim.warmup_steps = 2;
  c.optim.total_steps = 20;
  c.optim.grad_clip = 0.5f;  // small enough to clip: the norm must be the whole model's
  c.pipeline.boundaries = EqualSplit(c.shape.n_layers, stages);
  c.pipeline.schedule = kind;
  c.pipeline.microbatches = 4;
  c.batch_size = 8;
  c.seed = 9;
  c.eval_batches = 2;
  return c;
}

std::vector<int32_t> Text(int n, int vocab, uint64_t seed) {
  auto noise = RandomTokens(n, vocab, seed);
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i % 7 == 0) ? noise[i] : (i * 5 + 3) % vocab;
  return t;
}

struct Run {
  Status status;
  std::vector<double> losses, norms;
  size_t events = 0;  // the last step's timeline events, every stage's
  double val = 0;
  std::vector<float> params, m, v;
  std::string describe;
};

// Steps a trainer, then reads validation loss, weights and moments (all collective calls).
Run Train(const TrainerConfig& c, int steps) {
  Run r;
  auto tr = Trainer::Create(c, {}, Text(3000, c.shape.n_vocab, 1), Text(400, c.shape.n_vocab, 2));
  if (!tr.ok()) {
    r.status = tr.status();
    return r;
  }
  r.describe = (*tr)->engine().Describe();
  for (int s = 0; s < steps; ++s) {
    auto st = (*tr)->Step();
    if (!st.ok()) {
      r.status = st.status();
      return r;
    }
    r.losses.push_back(st->loss);
    r.norms.push_back(st->grad_norm);
    r.events = st->report.events.size();
  }
  auto v = (*tr)->ValidationLoss();
  if (!v.ok()) {
    r.status = v.status();
    return r;
  }
  r.val = *v;
  auto ck = (*tr)->MakeCheckpoint();
  if (!ck.ok()) {
    r.status = ck.status();
    return r;
  }
  r.params = ck->params;
  r.m = ck->m;
  r.v = ck->v;
  return r;
}

double MaxRel(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, double{std::fabs(a[i] - b[i])});
    ref = std::max(ref, double{std::fabs(a[i])});
  }
  return ref > 0 ? err / ref : err;
}

}  // namespace

TEST_CASE("rank training: a pipeline over 2 and 4 processes trains like one process", "[train][ranks]") {
  struct Case {
    int stages;
    ScheduleKind kind;
  };
  for (const Case k : {Case{2, ScheduleKind::k1F1B}, Case{4, ScheduleKind::k1F1B}, Case{2, ScheduleKind::kGPipe}}) {
    CAPTURE(k.stages, ScheduleName(k.kind));
    const TrainerConfig c = Config(k.stages, k.kind);
    const Run ref = Train(c, 4);
    REQUIRE(ref.status.ok());
    const auto runs = lms::test::OnRanks<Run>(k.stages, [&](int, net::RankGroup* g) {
      TrainerConfig mine = c;
      mine.ranks = g;
      return Train(mine, 4);
    });
    for (int r = 0; r < k.stages; ++r) {
      CAPTURE(r);
      const Run& x = runs[static_cast<size_t>(r)];
      INFO(x.status.ToString());
      REQUIRE(x.status.ok());
      CHECK(x.describe == fmt::format("cpu, rank {} of {}", r, k.stages));
      REQUIRE(x.losses.size() == ref.losses.size());
      for (size_t s = 0; s < ref.losses.size(); ++s) {
        CHECK(x.losses[s] == Approx(ref.losses[s]).epsilon(1e-9));
        CHECK(x.norms[s] == Approx(ref.norms[s]).epsilon(1e-9));
      }
      CHECK(ref.norms[0] > c.optim.grad_clip);  // the clip was in play
      CHECK(x.events == ref.events);  // every stage's forwards and backwards, on every rank
      CHECK(x.val == Approx(ref.val).epsilon(1e-9));
      CHECK(MaxRel(ref.params, x.params) < 1e-6);
      CHECK(MaxRel(ref.m, x.m) < 1e-6);
      CHECK(MaxRel(ref.v, x.v) < 1e-6);
    }
  }
}

TEST_CASE("rank training: a bad rank layout is refused and a failing rank stops them all", "[train][ranks]") {
  // Three processes for a two-stage pipeline.
  auto wrong = lms::test::OnRanks<Run>(3, [&](int, net::RankGroup* g) {
    TrainerConfig c = Config(2, ScheduleKind::k1F1B);
    c.ranks = g;
    return Train(c, 1);
  });
  for (const Run& r : wrong) {
    CHECK(!r.status.ok());
    CHECK(r.status.message().find("one stage per process") != std::string::npos);
  }
  // Rank 1 is handed tokens outside the vocabulary: its stage fails, and rank 0, waiting for
  // its gradients, must fail too rather than wait forever.
  auto failing = lms::test::OnRanks<Run>(2, [&](int r, net::RankGroup* g) {
    TrainerConfig c = Config(2, ScheduleKind::k1F1B);
    c.ranks = g;
    Run out;
    auto tr = Trainer::Create(c, {}, Text(3000, c.shape.n_vocab, 1), Text(400, c.shape.n_vocab, 2));
    if (!tr.ok()) {
      out.status = tr.status();
      return out;
    }
    std::vector<int32_t> in(static_cast<size_t>(c.batch_size) * c.shape.seq_len, 1), tg = in;
    if (r == 1) tg[5] = c.shape.n_vocab + 3;
    out.status = (*tr)->engine().ForwardBackward(in.data(), tg.data(), 1.0f).status();
    return out;
  });
  CHECK(!failing[1].status.ok());
  CHECK(failing[1].status.message().find("outside the vocabulary") != std::string::npos);
  CHECK(!failing[0].status.ok());
}
