// Options shared by the commands that generate text (run, chat, bench…).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/model/chat_template.h"
#include "core/model/model.h"
#include "core/model/session.h"
#include "core/sample/sampler.h"

namespace lms::app {

struct GenerationOptions {
  int threads = 0;
  std::string device = "cpu";
  int ctx = 4096;
  int batch = 512;
  int n_predict = 128;
  SamplingParams sampling;
  std::vector<std::string> stop;
  std::string chat_template_file;  // overrides the model's template
  std::string system_prompt;
  std::string kv_type = "f16";
  int parallel = 1;  // conversations answered at once (answer, judge)

  // --parallel N: for the evaluation jobs.
  void AddParallelFlag(CLI::App* sub);

  void AddSamplingFlags(CLI::App* sub);
  void AddRuntimeFlags(CLI::App* sub);
  SessionOptions session() const;
};

// --kv-type f16|q8_0: the element type of the KV cache.
void AddKvTypeFlag(CLI::App* sub, std::string* kv_type);
TensorType KvCacheType(const std::string& kv_type);  // REQUIRES: a value AddKvTypeFlag accepts

// The chat template to use: --chat-template FILE, else the model's, else ChatML.
Result<ChatTemplate> LoadChatTemplate(const Model& model, const std::string& template_file);
// Renders OpenAI-style messages to the prompt text.
Result<std::string> RenderChat(const Model& model, const std::string& template_file,
                               const nlohmann::json& messages, bool add_generation_prompt);

}  // namespace lms::app
