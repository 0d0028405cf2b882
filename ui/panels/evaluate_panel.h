// Evaluate: pick a question set, contestants (local models with a temperature each) and a judge
// model; run answer -> judge (pairwise, both orders) -> leaderboard as a job of child steps
// (app/batch_runner.h) with live progress, cancel, and the leaderboard as a table at the end.
// Everything lands in the results database.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "app/batch_runner.h"
#include "ui/panels/contestant_editor.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class EvaluatePanel : public Panel {
 public:
  EvaluatePanel();
  ~EvaluatePanel() override;
  const char* Name() const override { return "Evaluate"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override { return running_ || pending_start_; }
  // Test hook: start a small run (`limit` questions, `max_tokens` per answer) once drawn.
  void Script(int limit, int max_tokens) {
    limit_ = limit;
    max_tokens_ = max_tokens;
    pending_start_ = true;
  }

 private:
  using Contestant = LocalContestant;
  Result<app::BatchJob> MakeJob(const UiShared& shared) const;
  void Start(const UiShared& shared);
  void Join();

  std::string questions_;
  std::vector<Contestant> contestants_;
  std::string judge_model_;
  int limit_ = 4;
  bool verdict_logprob_ = true;  // small local judges rarely write a parseable [[A]]/[[B]]/[[C]]
  int max_tokens_ = 128;
  std::string error_;
  std::unique_ptr<app::BatchRunner> runner_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  nlohmann::ordered_json summary_;  // written by the job thread before running_ turns false
  std::chrono::steady_clock::time_point started_;
  bool pending_start_ = false;
};

}  // namespace lms::ui
