// The training loop: gradient accumulation equals one larger batch, a restored checkpoint
// continues exactly, and training lowers the loss.
#include <catch2/catch.hpp>

#include <algorithm>
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
  auto ckr = (*a)->MakeCheckpoint();
  REQUIRE(ckr.ok());
  const Checkpoint& ck = *ckr;
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

TEST_CASE("trainer: the engine is chosen by device, and bad devices are refused", "[train][trainer][engine]") {
  const TrainerConfig base = SmallConfig();
  auto make = [&](const std::string& device, const std::string& precision) {
    TrainerConfig c = base;
    c.device = device;
    c.precision = precision;
    return Trainer::Create(c, {}, Text(2000, c.shape.n_vocab), Text(300, c.shape.n_vocab));
  };
  auto cpu = make("cpu", "f32");
  REQUIRE(cpu.ok());
  CHECK((*cpu)->engine().Describe() == "cpu");
  CHECK((*cpu)->engine().stages() == 2);
  auto bf16 = make("cpu", "bf16");
  REQUIRE(!bf16.ok());
  CHECK(bf16.status().message().find("bf16") != std::string::npos);
  CHECK(!make("cpu:1", "").ok());
  auto tpu = make("tpu", "");
  REQUIRE(!tpu.ok());
  CHECK(tpu.status().message().find("unknown training device") != std::string::npos);
  const std::vector<std::string> kinds = RegisteredTrainEngines();
  if (std::find(kinds.begin(), kinds.end(), "cuda") == kinds.end()) {
    auto cuda = make("cuda", "");
    REQUIRE(!cuda.ok());
    CHECK(cuda.status().code() == StatusCode::kUnsupported);
  }

  // A registered kind gets the spec, with the micro-batch size worked out; here it builds the
  // CPU engine, so training through it equals training on "cpu".
  std::string seen_device;
  int seen_mbs = 0;
  RegisterTrainEngine("fake", [&](const TrainEngineSpec& spec, const ParamLayout& layout) {
    seen_device = spec.device;
    seen_mbs = spec.pipeline.micro_batch_size;
    TrainEngineSpec cpu_spec = spec;
    cpu_spec.device = "cpu";
    return CreateCpuTrainEngine(cpu_spec, layout);
  });
  auto fake = make("fake:3", "");
  REQUIRE(fake.ok());
  CHECK(seen_device == "fake:3");
  CHECK(seen_mbs == base.batch_size / base.pipeline.microbatches);
  for (int s = 0; s < 2; ++s) {
    auto x = (*cpu)->Step();
    auto y = (*fake)->Step();
    REQUIRE(x.ok());
    REQUIRE(y.ok());
    CHECK(x->loss == y->loss);
  }
  CHECK((*cpu)->params() == (*fake)->params());
}
