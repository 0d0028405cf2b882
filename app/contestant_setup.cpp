#include "app/contestant_setup.h"

#include <fmt/format.h>

#include <filesystem>

#include "app/endpoint_answerer.h"
#include "app/engine_answerer.h"
#include "app/local_answerer.h"
#include "core/util/sha256.h"

namespace lms::app {

void AddContestantSourceFlags(CLI::App* sub, ContestantSource* src, const std::string& who) {
  sub->add_option("--model", src->model, fmt::format("GGUF file or known model name (a local {})", who.empty() ? "contestant" : who));
  sub->add_option("--endpoint", src->endpoint, "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 (instead of --model)");
  sub->add_option("--endpoint-model", src->endpoint_model, "Model name to ask the endpoint for");
  sub->add_option("--api-key-env", src->api_key_env, "Environment variable holding the endpoint's API key");
}

Result<SetUpContestantResult> SetUpContestant(store::Store& st, const std::string& name, const ContestantSource& src,
                                              const GenerationOptions& gen, const nlohmann::json& extra_config) {
  if (src.model.empty() == src.endpoint.empty()) return Status::InvalidArgument(fmt::format("give either --model or --endpoint for '{}'", name));
  SetUpContestantResult out;
  if (!src.model.empty()) {
    std::string path;
    if (gen.parallel > 1) {
      LMS_ASSIGN_OR_RETURN(auto batched, EngineAnswerer::Create(src.model, gen));
      path = batched->model_path();
      out.answerer = std::move(batched);
    } else {
      LMS_ASSIGN_OR_RETURN(auto local, LocalAnswerer::Create(src.model, gen));
      path = local->model_path();
      out.answerer = std::move(local);
    }
    LMS_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    LMS_ASSIGN_OR_RETURN(int64_t model_id, st.UpsertModel(path, sha, "{}"));
    nlohmann::json config = ContestantConfig(path, sha, gen);
    config.update(extra_config);
    LMS_ASSIGN_OR_RETURN(out.id, st.UpsertContestant(name, "local", model_id, config.dump()));
    return out;
  }
  EndpointOptions eo;
  eo.base_url = src.endpoint;
  eo.model = src.endpoint_model;
  eo.api_key_env = src.api_key_env;
  eo.temperature = gen.sampling.temperature;
  eo.max_tokens = gen.n_predict;
  eo.seed = gen.sampling.seed;
  eo.parallel = gen.parallel;
  LMS_ASSIGN_OR_RETURN(auto remote, EndpointAnswerer::Create(eo));
  nlohmann::json config = remote->Config();
  config["system"] = gen.system_prompt;
  config.update(extra_config);
  LMS_ASSIGN_OR_RETURN(out.id, st.UpsertContestant(name, "endpoint", std::nullopt, config.dump()));
  out.answerer = std::move(remote);
  return out;
}

Result<std::vector<int64_t>> FindRecordedContestants(store::Store& st, const std::vector<std::string>& names) {
  std::vector<int64_t> ids;
  for (const auto& name : names) {
    LMS_ASSIGN_OR_RETURN(auto id, st.FindContestant(name));
    if (!id) return Status::NotFound(fmt::format("contestant '{}' has no answers recorded (run lmstation answer first)", name));
    ids.push_back(*id);
  }
  return ids;
}

std::string QuestionSetName(const std::string& path, const std::string& sha256) {
  const std::filesystem::path p(path);
  return p.parent_path().filename().string() + "/" + p.filename().string() + "@" + sha256.substr(0, 12);
}

}  // namespace lms::app
