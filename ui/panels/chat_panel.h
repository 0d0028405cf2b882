// Chat: a multi-turn conversation with a local model on the serving engine, tokens streaming
// in as they are generated, a Stop button, system prompt and sampling settings, and the
// engine's tokens/s and KV usage. Each conversation is saved to the record as a run of kind
// "chat" with its turns (written off the UI thread after every reply).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ui/background_job.h"
#include "ui/model_runtime.h"
#include "ui/panels/panel.h"

namespace lms::ui {

class ChatPanel : public Panel {
 public:
  ChatPanel();
  ~ChatPanel() override;
  const char* Name() const override { return "Chat"; }
  void Draw(UiShared& shared) override;
  nlohmann::json Report() const override;
  bool Busy() const override;

  // Test hook: load `model` and send `prompt` as soon as the panel is drawn.
  void Script(std::string model, std::string prompt);

 private:
  void Load(const std::string& path);
  void Send();
  void Poll();
  void SaveTurns(const UiShared& shared);

  struct Turn {
    std::string role, content;
    int tokens = -1;  // generated tokens (assistant turns)
  };
  std::string model_path_;
  std::shared_ptr<ModelRuntime> runtime_;
  BackgroundJob<std::shared_ptr<ModelRuntime>> load_;
  std::string error_;
  std::string system_ = "You are a helpful assistant.";
  std::string input_;
  std::vector<Turn> turns_;
  float temperature_ = 0.7f;
  float top_p_ = 0.95f;
  int max_tokens_ = 256;
  struct Streaming;
  std::unique_ptr<Streaming> stream_;
  double last_tok_s_ = 0;
  int last_tokens_ = 0;
  std::string script_prompt_;
  // The record: the conversation's run (0 until first saved) and how many turns are in it.
  std::string conversation_id_;
  int64_t record_run_id_ = 0;
  size_t saved_turns_ = 0, saving_upto_ = 0;
  BackgroundJob<int64_t> record_;
  std::string record_error_;
};

}  // namespace lms::ui
