// The training loop: gradient accumulation equals one larger batch, a restored checkpoint
// continues exactly, and training lowers the loss.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/train/trainer.h"
#include "tests/core/train/train_test_util.h"

using namespace lms;
using namespace lms::train;
using namespace lms::train::test;

namespace {

TrainerConfig SmallConfig() {
  TrainerConfig c;
  c.shape = TinyShape();
  c.optim.lr = 3e-3f;
  c.optim.warmup_steps = 2;
  c.optim.total_steps = 20;
  c.pipeline.boundaries = EqualSplit(c.shape.n_layers, 2);
  c.pipeline.microbatches = 2;
  c.batch_size = 8;
  c.seed = 5;
  c.eval_batches = 2;
  return c;
}

std::vector<int32_t> Text(int n, int vocab) {
  // A learnable sequence: a repeating pattern with a little noise.
  auto noise = RandomTokens(n, vocab, 77);
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i % 11 == 0) ? noise[i] : (i * 7) % vocab;
  return t;
}

}  // namespace

TEST_CASE("trainer: gradient accumulation equals one batch of the same tokens", "[train][trainer]") {
  TrainerConfig one = SmallConfig();
  TrainerConfig two = one;
  two.batch_size = 4;
  two.grad_accum = 2;
  two.pipeline.microbatches = 1;
  auto a = Trainer::Create(one, {}, Text(2000, one.shape.n_vocab), Text(300, one.shape.n_vocab));
  auto b = Trainer::Create(two, {}, Text(2000, one.shape.n_vocab), Text(300, one.shape.n_vocab));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (int s = 0; s < 3; ++s) {
    auto sa = (*a)->Step();
    auto sb = (*b)->Step();
    REQUIRE(sa.ok());
    REQUIRE(sb.ok());
    CHECK(sa->tokens == sb->tokens);
    CHECK(sa->loss == Approx(sb->loss).epsilon(1e-6));
    CHECK(sa->grad_norm == Approx(sb->grad_norm).epsilon(1e-5));
  }
  double worst = 0;
  for (size_t i = 0; i < (*a)->params().size(); ++i) {
    worst = std::max(worst, double{std::fabs((*a)->params()[i] - (*b)->params()[i])});
  }
  CHECK(worst < 1e-5);
}

TEST_CASE("trainer: a restored checkpoint continues bit-identically; loss falls", "[train][trainer]") {
  const TrainerConfig c = SmallConfig();
  auto a = Trainer::Create(c, {}, Text(3000, c.shape.n_vocab), Text(300, c.shape.n_vocab));
  REQUIRE(a.ok());
  auto v0 = (*a)->ValidationLoss();
  REQUIRE(v0.ok());
  for (int s = 0; s < 5; ++s) REQUIRE((*a)->Step().ok());
  const Checkpoint ck = (*a)->MakeCheckpoint();
  std::vector<double> want;
  for (int s = 0; s < 5; ++s) want.push_back((*a)->Step()->loss);
  auto b = Trainer::Create(c, {}, Text(3000, c.shape.n_vocab), Text(300, c.shape.n_vocab));
  REQUIRE(b.ok());
  REQUIRE((*b)->Restore(ck).ok());
  CHECK((*b)->step() == 5);
  for (int s = 0; s < 5; ++s) CHECK((*b)->Step()->loss == want[s]);  // exactly
  CHECK((*b)->params() == (*a)->params());
  auto v1 = (*b)->ValidationLoss();
  REQUIRE(v1.ok());
  CHECK(*v1 < *v0 - 0.5);
  // A checkpoint of another shape is refused.
  Checkpoint other = ck;
  other.shape.d_model = 64;
  CHECK(!(*b)->Restore(other).ok());
}
