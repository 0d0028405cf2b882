// lmstation judge --questions FILE --contestants A,B,… --judge NAME --model MODEL — a local
// judge grades the recorded answers: pairwise in both orders (all pairs or against a baseline),
// or single-answer grades; reference-guided for math/reasoning/coding; resumable.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "app/commands.h"
#include "app/contestant_setup.h"
#include "core/eval/jobs.h"
#include "core/util/log.h"
#include "core/util/sha256.h"

#ifndef LMS_ASSETS_DIR
#define LMS_ASSETS_DIR "assets"
#endif

namespace lms::app {

CommandFn AddJudgeCommand(CLI::App& cli) {
  struct Opts {
    std::string questions, judge, db, prompts, references, baseline, mode = "pairwise", verdict = "text";
    ContestantSource src;
    std::vector<std::string> contestants;
    bool multi_turn = false;
    int limit = 0;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  o->gen.n_predict = 256;
  o->gen.ctx = 4096;
  o->gen.sampling.temperature = 0;  // judges decide greedily, as FastChat's do
  o->gen.parallel = 8;
  auto* sub = cli.add_subcommand("judge", "A judge model grades recorded answers (pairwise both orders, or single); resumable");
  sub->add_option("--questions", o->questions, "Question file the contestants answered")->required();
  sub->add_option("--contestants", o->contestants, "Contestant names (comma-separated)")->delimiter(',')->required();
  sub->add_option("--judge", o->judge, "Judge contestant name")->required();
  AddContestantSourceFlags(sub, &o->src, "judge");
  sub->add_option("--mode", o->mode, "pairwise or single")->check(CLI::IsMember({"pairwise", "single"}));
  sub->add_option("--verdict", o->verdict,
                  "text: parse the judge's written verdict (FastChat's way); logprob: forced choice by the probabilities of "
                  "[[A]]/[[B]]/[[C]] (or grades 1-10), stored with each judgment (local judges)")
      ->check(CLI::IsMember({"text", "logprob"}));
  sub->add_option("--baseline", o->baseline, "Pairwise against this contestant only");
  sub->add_flag("--multi-turn", o->multi_turn, "Also judge the second turn with the multi-turn prompts");
  sub->add_option("--prompts", o->prompts, "Judge prompts (FastChat judge_prompts.jsonl format; default: lmstation's own)");
  sub->add_option("--references", o->references, "Reference answers (FastChat model_answer jsonl) for math/reasoning/coding");
  sub->add_option("--limit", o->limit, "Judge only the first N questions");
  sub->add_option("--db", o->db, "Database file (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  o->gen.AddSamplingFlags(sub);
  o->gen.AddRuntimeFlags(sub);
  o->gen.AddParallelFlag(sub);
  return [o]() {
    // Forced choice scores one prompt at a time on a session; the engine would not be used.
    if (o->verdict == "logprob") o->gen.parallel = 1;
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
    const std::string set_name = QuestionSetName(o->questions, *qsha);
    auto rows = eval::RecordQuestions(st, set_name, o->questions, *qsha, *questions);
    if (!rows.ok()) return Fail(rows.status());
    auto found = FindRecordedContestants(st, o->contestants);
    if (!found.ok()) return Fail(found.status());
    std::vector<int64_t> ids = std::move(*found);
    eval::JudgeJobOptions jo;
    jo.mode = o->mode;
    jo.multi_turn = o->multi_turn;
    jo.judge_name = o->judge;
    jo.verdict = o->verdict;
    if (!o->baseline.empty()) {
      auto b = st.FindContestant(o->baseline);
      if (!b.ok() || !*b) return Fail(Status::NotFound(fmt::format("baseline '{}' is not a recorded contestant", o->baseline)));
      jo.baseline = **b;
      if (std::find(ids.begin(), ids.end(), **b) == ids.end()) ids.push_back(**b);
    }
    // The verdict method is part of the judge's definition: one judge name, one method.
    nlohmann::json extra = nlohmann::json::object();
    if (o->verdict != "text") extra["verdict"] = o->verdict;
    auto judge = SetUpContestant(st, o->judge, o->src, o->gen, extra);
    if (!judge.ok()) return Fail(judge.status());
    nlohmann::json run_config = {{"judge", o->judge}, {"contestants", o->contestants}, {"questions", *qsha}, {"mode", o->mode},
                                 {"baseline", o->baseline}, {"multi_turn", o->multi_turn}, {"prompts", prompt_file}, {"limit", o->limit}};
    if (o->verdict != "text") run_config["verdict"] = o->verdict;
    auto run = st.StartRun("judge", fmt::format("{} judges {}", o->judge, fmt::join(o->contestants, ",")), run_config.dump());
    if (!run.ok()) return Fail(run.status());
    if (run->resumed) LogInfo(fmt::format("resuming run {}", run->id));
    const auto t0 = std::chrono::steady_clock::now();
    auto stats = eval::RunJudgeJob(st, run->id, judge->id, ids, *questions, *rows, *prompts, *judge->answerer, jo,
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
