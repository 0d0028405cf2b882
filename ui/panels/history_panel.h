// History: every run in the SQLite record (kind, name, status, times, version), newest first,
// with the selected run's configuration (the newest is selected at first) and, for a chat run,
// its conversation.
#pragma once

#include <map>
#include <vector>

#include "core/store/store.h"
#include "ui/background_job.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class HistoryPanel : public Panel {
 public:
  const char* Name() const override { return "History"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override { return load_.Running() || !loaded_once_; }

 private:
  struct Loaded {
    std::vector<store::RunInfo> runs;
    std::map<int64_t, std::vector<store::ChatTurn>> chats;  // by run id, for runs of kind "chat"
  };
  BackgroundJob<Loaded> load_;
  std::vector<store::RunInfo> runs_;
  std::map<int64_t, std::vector<store::ChatTurn>> chats_;
  std::string error_;
  int selected_ = -1;
  bool loaded_once_ = false;
  bool started_ = false;
};

}  // namespace lms::ui
