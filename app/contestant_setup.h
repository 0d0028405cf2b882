// What `answer`, `judge` and `arena` share: the contestant flags (a local model file or an
// OpenAI-compatible endpoint), recording the contestant, and finding recorded contestants and
// question sets.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/generation_options.h"
#include "core/eval/answerer.h"
#include "core/store/store.h"

namespace lms::app {

struct ContestantSource {
  std::string model;           // GGUF file or known model name (local)
  std::string endpoint;        // OpenAI-compatible base URL (endpoint)
  std::string endpoint_model;  // the endpoint's model name
  std::string api_key_env;     // environment variable holding the endpoint's key
};

// --model, --endpoint, --endpoint-model and --api-key-env; `who` names the contestant in the help
// ("" for a contestant, "judge " for a judge).
void AddContestantSourceFlags(CLI::App* sub, ContestantSource* src, const std::string& who);

struct SetUpContestantResult {
  int64_t id = 0;                           // contestants row
  std::unique_ptr<eval::Answerer> answerer;
};

// Loads the model (or connects the endpoint) and records the contestant `name` with its settings
// (model file and SHA-256, sampling, system prompt, endpoint…) plus `extra_config` entries.
// Errors when neither or both of model and endpoint are given, or when `name` is recorded with
// other settings.
Result<SetUpContestantResult> SetUpContestant(store::Store& st, const std::string& name, const ContestantSource& src,
                                              const GenerationOptions& gen, const nlohmann::json& extra_config = nlohmann::json::object());

// Row ids of recorded contestants; an error names the first one with no row.
Result<std::vector<int64_t>> FindRecordedContestants(store::Store& st, const std::vector<std::string>& names);

// The name a question file is recorded under: "<folder>/<file>@<first 12 hex of its SHA-256>".
std::string QuestionSetName(const std::string& path, const std::string& sha256);

}  // namespace lms::app
