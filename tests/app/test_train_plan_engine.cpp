// Planning on GPUs, checked without one: a registered device kind ("fakegpu", two cards whose
// training engine is the CPU's) is profiled through its engine as the CUDA one would be, the
// plan names its cards in stage order, a one-card profile extrapolates to eight, and
// `train --plan auto` on that kind runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>

#include "app/train_config.h"
#include "app/train_plan.h"
#include "app/train_setup.h"
#include "core/backend/registry.h"
#include "core/train/train_engine.h"
#include "tests/test_support.h"

namespace lms::app {
namespace {

std::multiset<std::string>& EnginesMade() {
  static std::multiset<std::string> d;
  return d;
}

void RegisterFakeGpus() {
  static const bool once = [] {
    BackendProvider p;
    p.kind = "fakegpu";
    p.list_devices = [] {
      std::vector<DeviceInfo> v;
      for (int i = 0; i < 2; ++i) v.push_back({"fakegpu", i, "Fake Card", uint64_t{4} << 30, 9, 0});
      return v;
    };
    p.create = [](int) -> Result<std::unique_ptr<Backend>> { return Status::Unsupported("no inference on fakegpu"); };
    RegisterBackendProvider(std::move(p));
    train::RegisterTrainEngine("fakegpu", [](const train::TrainEngineSpec& spec, const train::ParamLayout& layout) {
      EnginesMade().insert(spec.device);
      train::TrainEngineSpec cpu = spec;
      cpu.device = "cpu";
      return train::CreateCpuTrainEngine(cpu, layout);
    });
    return true;
  }();
  (void)once;
}

TrainRunConfig SmallRun(const std::string& device) {
  auto cfg = LoadTrainConfig(std::string(LMS_SOURCE_DIR) + "/assets/examples/train_tiny.toml");
  REQUIRE(cfg.ok());
  TrainRunConfig c = *cfg;
  c.shape.n_layers = 4;
  c.shape.d_model = 32;
  c.shape.d_ff = 64;
  c.shape.seq_len = 16;
  c.shape.n_vocab = 258;
  c.batch_size = 4;
  c.device = device;
  c.plan = "auto";
  return c;
}

}  // namespace

TEST_CASE("plan: GPUs are profiled through their training engine", "[train][plan][engine]") {
  RegisterFakeGpus();
  EnginesMade().clear();
  TrainRunConfig c = SmallRun("fakegpu");
  auto pr = ProfileLocal(c, c.shape, /*fixed_microbatches=*/false, /*reps=*/3);
  REQUIRE(pr.ok());
  REQUIRE(pr->devices.size() == 2);
  CHECK(pr->devices[0].name == "fakegpu0 Fake Card");
  CHECK(pr->devices[1].name == "fakegpu1 Fake Card");
  CHECK(pr->devices[0].memory_bytes == Approx(0.9 * (uint64_t{4} << 30)));
  // Cards of one name are timed once: engines of 1 and 2 layers on the first only.
  CHECK(EnginesMade().count("fakegpu:0") >= 2);
  CHECK(EnginesMade().count("fakegpu:1") == 0);
  const auto& cost = pr->cost;
  REQUIRE(cost.layers() == c.shape.n_layers);
  for (int l = 0; l < c.shape.n_layers; ++l) {
    CHECK(cost.fwd_s_per_token[l][0] > 0);
    CHECK(cost.bwd_s_per_token[l][0] > 0);
    CHECK(cost.fwd_s_per_token[l][1] == cost.fwd_s_per_token[l][0]);
  }
  CHECK(cost.fwd_s_per_token[3][0] > cost.fwd_s_per_token[0][0]);  // the head rides on the last layer
  CHECK(cost.step_fixed_s > 0);
  CHECK(cost.contention.empty());  // separate cards do not share cores

  auto plan = PlanForRun(c, c.shape);
  REQUIRE(plan.ok());
  const int S = static_cast<int>(plan->boundaries.size()) - 1;
  CHECK(plan->device.rfind("fakegpu:", 0) == 0);
  CHECK(static_cast<int>(std::count(plan->device.begin(), plan->device.end(), ',')) == S - 1);
  CHECK(plan->note.find("on fakegpu:") != std::string::npos);
}

TEST_CASE("plan: a profiled GPU extrapolates to eight, and device strings follow the plan", "[train][plan][engine]") {
  RegisterFakeGpus();
  TrainRunConfig c = SmallRun("fakegpu:1");
  c.shape.n_layers = 8;
  c.batch_size = 8;
  auto pr = ProfileLocal(c, c.shape, false, 3);
  REQUIRE(pr.ok());
  REQUIRE(pr->devices.size() == 1);
  const double one_layer = pr->cost.fwd_s_per_token[0][0];
  ReplicateDevice(*pr, 0, 8);
  REQUIRE(pr->devices.size() == 8);
  CHECK(pr->devices[7].name == "fakegpu1 Fake Card (extrapolated 7)");
  CHECK(pr->cost.fwd_s_per_token[0][7] == one_layer);
  auto eight = train::PlanPipeline(*pr);
  REQUIRE(eight.ok());
  CHECK(eight->devices.size() >= 1);
  CHECK(eight->devices.size() <= 8);

  auto s = DeviceString("fakegpu", {1, 0});
  REQUIRE(s.ok());
  CHECK(*s == "fakegpu:1,0");
  auto t = DeviceString("fakegpu:1", {0});
  REQUIRE(t.ok());
  CHECK(*t == "fakegpu:1");
  CHECK(!DeviceString("fakegpu:1", {1}).ok());
  CHECK(!DeviceString("fakegpu:7", {0}).ok());
  CHECK(!DeviceString("fakegpu:x", {0}).ok());
}

TEST_CASE("train --plan auto on a GPU kind sets the run's device from the plan", "[train][plan][engine]") {
  RegisterFakeGpus();
  TrainRunConfig c = SmallRun("fakegpu");
  c.out = test::TempDir() + "/plan_engine_out";
  std::filesystem::create_directories(c.out);
  auto setup = PrepareTraining(c, false);
  INFO((setup.ok() ? std::string() : setup.status().message()));
  REQUIRE(setup.ok());
  CHECK(setup->trainer.device.rfind("fakegpu:", 0) == 0);
  CHECK(setup->plan_note.find("planned:") != std::string::npos);
}

}  // namespace lms::app
