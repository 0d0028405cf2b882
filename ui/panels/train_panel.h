// Train: a TOML config in an editable text box (loaded from a file, assets/examples/
// train_tiny.toml by default), Run and Stop, live loss and learning-rate plots, the plan as a
// table (stages, layer ranges, devices) and the latest step's pipeline timeline as a Gantt chart
// (one row per stage, forward and backward of each micro-batch in two colours). The run is an
// app::TrainJob on a background thread; the panel draws its snapshots.
#pragma once

#include <memory>
#include <string>

#include "app/train_job.h"
#include "ui/background_job.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class TrainPanel : public Panel {
 public:
  TrainPanel();
  ~TrainPanel() override;
  const char* Name() const override { return "Train"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override { return run_.Running() || script_; }

  // Test hook: run the config at once for `steps` steps (0: the config's) into `out` ("": default).
  void Script(int steps, std::string out);

 private:
  void LoadFile();
  void Run(const UiShared& shared);
  void DrawPlan();
  void DrawTimeline();

  std::string config_path_;
  std::string config_text_;
  std::string out_dir_ = "train-out";
  int steps_override_ = 0;
  std::shared_ptr<app::TrainJob> job_;
  BackgroundJob<app::TrainSummary> run_;
  app::TrainProgress progress_;  // the job's latest snapshot, taken once per frame
  std::optional<app::TrainSummary> summary_;
  std::string error_;
  int timeline_boxes_ = 0;  // drawn in the latest frame
  bool script_ = false;
};

}  // namespace lms::ui
