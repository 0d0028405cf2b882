// An eval::Answerer backed by a local GGUF model run one request at a time on the CPU runtime.
// The serving engine will provide a batched Answerer with the same interface.
#pragma once

#include <memory>
#include <string>

#include "app/commands.h"
#include "app/generation_options.h"
#include "core/eval/answerer.h"
#include "core/model/session.h"

namespace lms::app {

class LocalAnswerer : public eval::Answerer {
 public:
  // `gen` holds sampling, context, max tokens and the chat template override.
  static Result<std::unique_ptr<LocalAnswerer>> Create(const std::string& model, const GenerationOptions& gen);
  Result<eval::AnswerText> Reply(const std::vector<eval::ChatMessage>& conversation) override;
  // Renders the conversation with the chat template, opens the assistant turn, appends
  // `reply_prefix` and scores each option's tokens (tokenized on their own) after it.
  Result<std::vector<double>> OptionLogProbs(const std::vector<eval::ChatMessage>& conversation, const std::string& reply_prefix,
                                             const std::vector<std::string>& options) override;
  const std::string& model_path() const { return path_; }

 private:
  // One session for every request: the backend keeps each allocation until it is destroyed,
  // so a session per request would grow memory without bound over a long job.
  Result<Session*> GetSession();

  LoadedModel lm_;
  std::unique_ptr<Session> session_;
  GenerationOptions gen_;
  std::string path_;
};

// Contestant settings as stored in the record (model file, its SHA-256 and the sampling).
nlohmann::json ContestantConfig(const std::string& model_path, const std::string& sha256, const GenerationOptions& gen);

}  // namespace lms::app
