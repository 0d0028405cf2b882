// lmstation judge --questions FILE --contestants A,B,… --judge NAME --model MODEL — a local
// judge grades the recorded answers: pairwise in both orders (all pairs or against a baseline),
// or single-answer grades; reference-guided for math/reasoning/coding; resumable.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "app/commands.h"
#include "app/endpoint_answerer.h"
#include "app/local_answerer.h"
#include "core/eval/jobs.h"
#include "core/util/log.h"
#include "core/util/sha256.h"

#ifndef LMS_ASSETS_DIR
#define LMS_ASSETS_DIR "assets"
#endif

namespace lms::app {

CommandFn AddJudgeCommand(CLI::App& cli) {
  struct Opts {
    std::string questions, judge, model, db, prompts, references, baseline, mode = "pairwise", endpoint, endpoint_model, api_key_env;
    std::vector<std::string> contestants;
    bool multi_turn = false;
    int limit = 0;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  o->gen.n_predict = 256;
  o->gen.ctx = 4096;
  o->gen.sampling.temperature = 0;  // judges decide greedily, as FastChat's do
  auto* sub = cli.add_subcommand("judge", "A judge model grades recorded answers (pairwise both orders, or single); resumable");
  sub->add_option("--questions", o->questions, "Question file the contestants answered")->required();
  sub->add_option("--contestants", o->contestants, "Contestant names (comma-separated)")->delimiter(',')->required();
  sub->add_option("--judge", o->judge, "Judge contestant name")->required();
  sub->add_option("--model", o->model, "Judge GGUF file or known model name (a local judge)");
  sub->add_option("--endpoint", o->endpoint, "OpenAI-compatible base URL of the judge (instead of --model)");
  sub->add_option("--endpoint-model", o->endpoint_model, "Model name to ask the endpoint for");
  sub->add_option("--api-key-env", o->api_key_env, "Environment variable holding the endpoint's API key");
  sub->add_option("--mode", o->mode, "pairwise or single")->check(CLI::IsMember({"pairwise", "single"}));
  sub->add_option("--baseline", o->baseline, "Pairwise against this contestant only");
  sub->add_flag("--multi-turn", o->multi_turn, "Also judge the second turn with the multi-turn prompts");
  sub->add_option("--prompts", o->prompts, "Judge prompts (FastChat judge_prompts.jsonl format; default: lmstation's own)");
  sub->add_option("--references", o->references, "Reference answers (FastChat model_answer jsonl) for math/reasoning/coding");
  sub->add_option("--limit", o->limit, "Judge only the first N questions");
  sub->add_option("--db", o->db, "Database file (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  o->gen.AddSamplingFlags(sub);
  o->gen.AddRuntimeFlags(sub);
  return [o]() {
    auto questions = eval::LoadQuestions(o->questions);
    if (!questions.ok()) return Fail(questions.status());
    if (o->limit > 0 && static_cast<size_t>(o->limit) < questions->size()) questions->resize(o->limit);
    if (!o->references.empty()) {
      auto refs = eval::LoadModelAnswers(o->references);
      if (!refs.ok()) return Fail(refs.status());
      for (auto& q : *questions) {
        auto it = refs->find(q.id);
        if (it != refs->end() && q.reference.empty()) q.reference = it->second;
      }
    }
    const std::string prompt_file = o->prompts.empty() ? std::string(LMS_ASSETS_DIR) + "/eval/judge_prompts.jsonl" : o->prompts;
    auto prompts = eval::LoadJudgePrompts(prompt_file);
    if (!prompts.ok()) return Fail(prompts.status());
    auto qsha = Sha256File(o->questions);
    if (!qsha.ok()) return Fail(qsha.status());
    auto db = OpenStore(o->db);
    if (!db.ok()) return Fail(db.status());
    store::Store& st = **db;
    const std::string set_name = std::filesystem::path(o->questions).parent_path().filename().string() + "/" +
                                 std::filesystem::path(o->questions).filename().string() + "@" + qsha->substr(0, 12);
    auto rows = eval::RecordQuestions(st, set_name, o->questions, *qsha, *questions);
    if (!rows.ok()) return Fail(rows.status());
    std::vector<int64_t> ids;
    for (const auto& name : o->contestants) {
      auto id = st.FindContestant(name);
      if (!id.ok()) return Fail(id.status());
      if (!*id) return Fail(Status::NotFound(fmt::format("contestant '{}' has no answers recorded (run lmstation answer first)", name)));
      ids.push_back(**id);
    }
    eval::JudgeJobOptions jo;
    jo.mode = o->mode;
    jo.multi_turn = o->multi_turn;
    jo.judge_name = o->judge;
    if (!o->baseline.empty()) {
      auto b = st.FindContestant(o->baseline);
      if (!b.ok() || !*b) return Fail(Status::NotFound(fmt::format("baseline '{}' is not a recorded contestant", o->baseline)));
      jo.baseline = **b;
      if (std::find(ids.begin(), ids.end(), **b) == ids.end()) ids.push_back(**b);
    }
    if (o->model.empty() == o->endpoint.empty()) return Fail(Status::InvalidArgument("give either --model or --endpoint for the judge"));
    std::unique_ptr<eval::Answerer> judge;
    Result<int64_t> judge_id = Status::Internal("unset");
    if (!o->model.empty()) {
      auto local = LocalAnswerer::Create(o->model, o->gen);
      if (!local.ok()) return Fail(local.status());
      auto msha = Sha256File((*local)->model_path());
      if (!msha.ok()) return Fail(msha.status());
      auto model_id = st.UpsertModel((*local)->model_path(), *msha, "{}");
      if (!model_id.ok()) return Fail(model_id.status());
      judge_id = st.UpsertContestant(o->judge, "local", *model_id, ContestantConfig((*local)->model_path(), *msha, o->gen).dump());
      judge = std::move(*local);
    } else {
      EndpointOptions eo;
      eo.base_url = o->endpoint;
      eo.model = o->endpoint_model;
      eo.api_key_env = o->api_key_env;
      eo.temperature = o->gen.sampling.temperature;
      eo.max_tokens = o->gen.n_predict;
      auto remote = EndpointAnswerer::Create(eo);
      if (!remote.ok()) return Fail(remote.status());
      judge_id = st.UpsertContestant(o->judge, "endpoint", std::nullopt, (*remote)->Config().dump());
      judge = std::move(*remote);
    }
    if (!judge_id.ok()) return Fail(judge_id.status());
    nlohmann::json run_config = {{"judge", o->judge}, {"contestants", o->contestants}, {"questions", *qsha}, {"mode", o->mode},
                                 {"baseline", o->baseline}, {"multi_turn", o->multi_turn}, {"prompts", prompt_file}, {"limit", o->limit}};
    auto run = st.StartRun("judge", fmt::format("{} judges {}", o->judge, fmt::join(o->contestants, ",")), run_config.dump());
    if (!run.ok()) return Fail(run.status());
    if (run->resumed) LogInfo(fmt::format("resuming run {}", run->id));
    const auto t0 = std::chrono::steady_clock::now();
    auto stats = eval::RunJudgeJob(st, run->id, *judge_id, ids, *questions, *rows, *prompts, *judge, jo,
                                   [](const std::string& s) { LogInfo(s); });
    if (!stats.ok()) {
      (void)st.FinishRun(run->id, "failed");
      return Fail(stats.status());
    }
    (void)st.FinishRun(run->id, "done");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("run %lld: %lld judgments made, %lld already recorded, %lld unparseable (kept), %lld missing answers, %.1f s\n",
                static_cast<long long>(run->id), static_cast<long long>(stats->computed), static_cast<long long>(stats->reused),
                static_cast<long long>(stats->unparseable), static_cast<long long>(stats->missing), secs);
    if (o->mode == "pairwise") {
      std::printf("battles: %lld; position consistency: %lld of %lld pairs judged in both orders (%.1f%%), inconsistent pairs count as ties\n",
                  static_cast<long long>(stats->battles), static_cast<long long>(stats->both_orders - stats->inconsistent),
                  static_cast<long long>(stats->both_orders),
                  stats->both_orders ? 100.0 * static_cast<double>(stats->both_orders - stats->inconsistent) / static_cast<double>(stats->both_orders) : 0.0);
    }
    return 0;
  };
}

}  // namespace lms::app
