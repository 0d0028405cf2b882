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
  const std::string& model_path() const { return path_; }

 private:
  LoadedModel lm_;
  GenerationOptions gen_;
  std::string path_;
  // One session (one KV cache) for every reply: the backend keeps an allocation until it is
  // destroyed, so a session per reply would grow memory by a full KV cache each time.
  std::unique_ptr<Session> session_;
};

// Contestant settings as stored in the record (model file, its SHA-256 and the sampling).
nlohmann::json ContestantConfig(const std::string& model_path, const std::string& sha256, const GenerationOptions& gen);

}  // namespace lms::app
