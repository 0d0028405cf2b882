// Training metrics in the SQLite record: one `runs` row per output directory (kind "train"), and
// per step `metrics` rows loss, lr, grad_norm, tokens_per_s, bubble, val_loss (when evaluated),
// wall_s and stage<s>_busy_s; the last step also gets its per-stage timeline as
// timeline.s<stage>.mb<m>.<F|B>.start_s / .end_s (timeline.s<stage>.c<chunk>.mb<m>… under the
// interleaved schedule). A resumed run continues the same row and drops
// the metrics of steps after its checkpoint, as the CSV log does.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/store/store.h"
#include "core/train/trainer.h"

namespace lms::app {

class TrainRecord {
 public:
  // db_flag empty: the default record, only if that file already exists (else no record).
  // resumed_at: the step a resumed run continues from (0 for a fresh run).
  static Result<std::unique_ptr<TrainRecord>> Open(const std::string& db_flag, const std::string& out_dir,
                                                   const std::string& config_path, int64_t resumed_at);
  const std::string& path() const { return path_; }
  int64_t run_id() const { return run_id_; }

  Status AddStep(const train::StepStats& st, std::optional<double> val_loss);
  Status AddTimeline(int64_t step, const train::StepReport& rep);
  Status AddValue(int64_t step, const std::string& name, double value);
  Status Finish(const std::string& status);

 private:
  std::unique_ptr<store::Store> store_;
  std::string path_;
  int64_t run_id_ = 0;
};

}  // namespace lms::app
