// An eval::Answerer backed by the serving engine: many conversations answered at once, batched
// into one forward pass per step (weights read once for all of them). Reply is thread-safe; a
// job runs up to concurrency() conversations at a time from its worker threads. Greedy replies
// are the same text the one-at-a-time LocalAnswerer gives (the engine is batch invariant).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "app/commands.h"
#include "app/generation_options.h"
#include "app/local_answerer.h"
#include "core/eval/answerer.h"
#include "core/serve/engine.h"

namespace lms::app {

class EngineAnswerer : public eval::Answerer {
 public:
  // `gen.parallel` sequences run at once (at least 2).
  static Result<std::unique_ptr<EngineAnswerer>> Create(const std::string& model, const GenerationOptions& gen);
  ~EngineAnswerer() override;

  Result<eval::AnswerText> Reply(const std::vector<eval::ChatMessage>& conversation) override;
  // Forced choice scores prompts without generating, so it runs one at a time on a session of
  // its own (loaded on first use), not on the engine.
  Result<std::vector<double>> OptionLogProbs(const std::vector<eval::ChatMessage>& conversation, const std::string& reply_prefix,
                                             const std::vector<std::string>& options) override;
  int concurrency() const override { return gen_.parallel; }
  const std::string& model_path() const { return path_; }

 private:
  EngineAnswerer() = default;

  LoadedModel lm_;
  std::unique_ptr<serve::Engine> engine_;
  GenerationOptions gen_;
  std::string path_;
  std::mutex scorer_mu_;
  std::unique_ptr<LocalAnswerer> scorer_;  // GUARDED_BY(scorer_mu_)
};

}  // namespace lms::app
