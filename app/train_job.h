// One training run as a job: prepare (data, weights, plan), step until the configured steps or a
// cancel, checkpoint, validate and export, recording metrics in the CSV log and the SQLite record
// (see app/train_record.h). `lmstation train` runs it in its own thread and prints the progress;
// the desktop app's Train panel runs it on a background thread and draws its snapshots.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "app/train_config.h"
#include "core/train/pipeline.h"

namespace lms::net {
class RankGroup;
}

namespace lms::app {

struct TrainJobOptions {
  std::string config_path;  // the file the config came from (names the recorded run)
  std::string db;           // record here (empty: the default record when it exists)
  bool resume = false;      // continue from OUT/checkpoint.bin when it exists
  bool verbose = false;     // print setup lines to stderr (the command line)
  // A multi-process run: this process is one rank of the group and runs one pipeline stage
  // (stages = ranks, plan = equal). Every rank runs the job with the same config; rank 0 alone
  // writes the log, checkpoints, timeline, model and record (it sends its checkpoint to the
  // others on --resume); the other ranks keep their token shards in OUT/rank-N. Cancel stops
  // this rank, which makes the others fail.
  net::RankGroup* ranks = nullptr;
};

struct TrainStageRow {
  int stage = 0;
  int first_layer = 0, end_layer = 0;  // layers [first, end)
  int threads = 0;                     // the stage's CPU worker threads
};

// What a run shows while it goes; the job publishes a new one after every step.
struct TrainProgress {
  std::string phase = "preparing";  // preparing, training, exporting, done, cancelled, failed
  int64_t step = 0;
  int total_steps = 0;
  int64_t first_step = 0;          // where this run started (a resumed run starts later)
  std::vector<float> loss, lr;     // per step since first_step
  double tokens_per_s = 0, eta_s = 0, bubble = 0;
  std::optional<double> val_loss;
  std::string model_summary, schedule, plan_note;
  int microbatches = 0;
  std::vector<TrainStageRow> plan;
  std::vector<train::TimelineEvent> timeline;  // the latest step's last pass
  double timeline_wall_s = 0;
  std::string record_path;  // empty when not recorded
  int64_t record_run_id = 0;
};

struct TrainSummary {
  double loss = 0, val_loss = 0, tokens_per_s = 0, bubble = 0, bubble_theory = 0;
  int64_t steps = 0;
  int stages = 0, microbatches = 0, chunks = 1;
  std::string schedule;
  std::vector<int> boundaries;
  std::string model, checkpoint;  // model: empty when cancelled (not exported)
  bool cancelled = false;
};

class TrainJob {
 public:
  // Runs in the calling thread. The output directory is created. `on_step` (optional) is called
  // after each step with the new snapshot.
  Result<TrainSummary> Run(TrainRunConfig c, const TrainJobOptions& o,
                           const std::function<void(const TrainProgress&)>& on_step = {});
  // Thread-safe: stop at the next step boundary (the checkpoint is saved; no export).
  void Cancel() { cancel_ = true; }
  TrainProgress Snapshot() const;

 private:
  void Publish(const TrainProgress& p);

  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  TrainProgress progress_;  // GUARDED_BY(mu_)
};

}  // namespace lms::app
