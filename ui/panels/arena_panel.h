// Arena: a prompt goes to two contestants drawn at random (names hidden, sides random); both
// answers stream side by side; the person votes A / B / tie / both bad; then the names are
// revealed, the battle is recorded (source "human") and the leaderboard with its bootstrap
// intervals is recomputed from every battle in the record.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/eval/rating.h"
#include "ui/background_job.h"
#include "ui/model_runtime.h"
#include "ui/panels/contestant_editor.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class ArenaPanel : public Panel {
 public:
  ArenaPanel();
  ~ArenaPanel() override;
  const char* Name() const override { return "Arena"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override;

  // Test hook: ask `prompt`, then vote `vote` ("a", "b", "tie", "both_bad") when both are done.
  void Script(std::string prompt, std::string vote);

 private:
  using Contestant = LocalContestant;
  struct Side {
    int contestant = -1;
    std::string text;
    std::shared_ptr<serve::RequestChannel> channel;
    bool done = true;
  };
  void StartBattle(const UiShared& shared);
  void Poll();
  void Vote(const UiShared& shared, eval::Winner w, const char* label);
  void RefreshBoard(const UiShared& shared);

  std::vector<Contestant> contestants_;
  std::map<std::string, std::shared_ptr<ModelRuntime>> runtimes_;  // by model path
  BackgroundJob<std::vector<std::shared_ptr<ModelRuntime>>> load_;
  std::string prompt_, asked_;
  Side a_, b_;
  bool voted_ = true;
  std::string vote_label_;
  std::string error_;
  std::mt19937_64 rng_;
  BackgroundJob<eval::Leaderboard> board_job_;
  std::optional<eval::Leaderboard> board_;
  bool board_requested_ = false;
  // Board computations asked for, started and shown (a vote during a computation asks for
  // another; the panel is busy until the latest asked for is shown).
  int board_wanted_ = 0, board_started_ = 0, board_have_ = 0;
  std::string script_vote_;
  bool pending_battle_ = false;
};

}  // namespace lms::ui
