// History: every run in the SQLite record (kind, name, status, times), newest first; the newest
// is selected at first. The selected run shows its lineage (what it wrote, the runs it used and
// that used it — click one to go there — and the model files behind it), its configuration and,
// for a chat run, its conversation; ticking "cmp" on a second run compares the two side by side,
// differences highlighted. The record is read off the UI thread.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "core/store/lineage.h"
#include "core/store/store.h"
#include "ui/background_job.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class HistoryPanel : public Panel {
 public:
  const char* Name() const override { return "History"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override { return load_.Running() || !loaded_once_ || detail_.Running() || pending_detail_; }

  // Test hook: select run `id` (and compare it with `compare_with`) once the runs are loaded.
  void Script(int64_t id, std::optional<int64_t> compare_with) { script_ = {id, compare_with}; }

 private:
  struct Loaded {
    std::vector<store::RunInfo> runs;
    std::map<int64_t, std::vector<store::ChatTurn>> chats;  // by run id, for runs of kind "chat"
  };
  struct Detail {
    store::RunLineage lineage;
    std::vector<store::ComparisonRow> comparison;  // empty without a second run
  };
  void Select(int64_t id) { selected_id_ = id, pending_detail_ = true; }
  void DrawRunsTable();
  void DrawDetail();

  BackgroundJob<Loaded> load_;
  BackgroundJob<Detail> detail_;
  std::vector<store::RunInfo> runs_;
  std::map<int64_t, std::vector<store::ChatTurn>> chats_;
  std::optional<Detail> shown_;
  std::string error_, db_;
  std::optional<int64_t> selected_id_, compare_id_;
  bool pending_detail_ = false;
  bool loaded_once_ = false;
  bool started_ = false;
  std::optional<std::pair<int64_t, std::optional<int64_t>>> script_;
};

}  // namespace lms::ui
