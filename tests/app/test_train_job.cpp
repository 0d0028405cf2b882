// The training job behind `lmstation train` and the desktop app's Train panel: its snapshots
// follow the steps, and a cancel stops it at a step boundary with the checkpoint saved, nothing
// exported and the recorded run marked cancelled.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>

#include "app/train_config.h"
#include "app/train_job.h"
#include "core/store/store.h"
#include "tests/test_support.h"

namespace lms::app {

TEST_CASE("TrainJob publishes each step and stops at a step boundary when cancelled", "[train][job]") {
  const std::string config = std::string(LMS_SOURCE_DIR) + "/assets/examples/train_tiny.toml";
  auto cfg = LoadTrainConfig(config);
  REQUIRE(cfg.ok());
  const std::string out = test::TempDir() + "/train_job_cancel";
  std::filesystem::remove_all(out);
  cfg->out = out;
  TrainJobOptions o;
  o.config_path = config;
  o.db = test::TempDir() + "/train_job_cancel.db";
  std::filesystem::remove(o.db);
  TrainJob job;
  int calls = 0;
  auto r = job.Run(*cfg, o, [&](const TrainProgress& p) {
    ++calls;
    CHECK(p.phase == "training");
    CHECK(p.step == calls);
    CHECK(static_cast<int>(p.loss.size()) == calls);
    CHECK(std::isfinite(p.loss.back()));
    // Every micro-batch of every stage runs one forward and one backward per pass.
    CHECK(static_cast<int>(p.timeline.size()) == static_cast<int>(p.plan.size()) * p.microbatches * 2);
    if (calls == 3) job.Cancel();
  });
  REQUIRE(r.ok());
  CHECK(r->cancelled);
  CHECK(r->steps == 3);
  CHECK(calls == 3);
  CHECK(r->model.empty());
  CHECK(std::filesystem::exists(out + "/checkpoint.bin"));
  CHECK_FALSE(std::filesystem::exists(out + "/model.gguf"));
  const TrainProgress p = job.Snapshot();
  CHECK(p.phase == "cancelled");
  REQUIRE(p.plan.size() == 2);
  CHECK(p.plan[0].first_layer == 0);
  CHECK(p.plan[1].end_layer == 4);
  auto st = store::Store::Open(o.db);
  REQUIRE(st.ok());
  auto runs = (*st)->ListRuns();
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  CHECK((*runs)[0].kind == "train");
  CHECK((*runs)[0].status == "cancelled");
}

}  // namespace lms::app
