// A local model ready to chat on: model, backend and a serving engine, loaded off the UI thread
// (by a BackgroundJob) and shared by the panels that talk to it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "app/commands.h"
#include "core/serve/engine.h"

namespace lms::ui {

struct ModelRuntime {
  app::LoadedModel lm;
  std::unique_ptr<serve::Engine> engine;
  std::string path;
};

Result<std::shared_ptr<ModelRuntime>> LoadModelRuntime(const std::string& path, int64_t kv_bytes = 128ll << 20);

struct ChatSampling {
  float temperature = 0.7f;
  float top_p = 0.95f;
  int max_tokens = 256;
  uint64_t seed = 0;
};

// Renders OpenAI-style `messages` with the model's chat template and submits them; the channel
// streams the reply.
Result<std::shared_ptr<serve::RequestChannel>> SubmitChat(ModelRuntime& rt, const nlohmann::json& messages,
                                                          const ChatSampling& s);

}  // namespace lms::ui
