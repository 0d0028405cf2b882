// lmstation answer --questions FILE --contestant NAME --model MODEL — a contestant answers a
// question set (FastChat MT-Bench format, multi-turn), every turn recorded as it is produced.
// Rerunning the same command continues an interrupted run.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "app/commands.h"
#include "app/contestant_setup.h"
#include "core/eval/jobs.h"
#include "core/util/log.h"
#include "core/util/sha256.h"

namespace lms::app {

CommandFn AddAnswerCommand(CLI::App& cli) {
  struct Opts {
    std::string questions, contestant, db, export_path;
    ContestantSource src;
    int limit = 0;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  o->gen.n_predict = 256;
  o->gen.ctx = 2048;
  o->gen.parallel = 8;
  auto* sub = cli.add_subcommand("answer", "A contestant answers a question set (MT-Bench format); resumable");
  sub->add_option("--questions", o->questions, "Question file (FastChat question.jsonl format)")->required();
  sub->add_option("--contestant", o->contestant, "Contestant name (model + settings are recorded under it)")->required();
  AddContestantSourceFlags(sub, &o->src, "");
  sub->add_option("--system", o->gen.system_prompt, "System prompt opening each conversation");
  sub->add_option("--chat-template", o->gen.chat_template_file, "Jinja chat template file to use instead of the model's");
  sub->add_option("--limit", o->limit, "Answer only the first N questions");
  sub->add_option("--db", o->db, "Database file (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  sub->add_option("--export", o->export_path, "Then write this contestant's answers as FastChat model_answer jsonl");
  o->gen.AddSamplingFlags(sub);
  o->gen.AddRuntimeFlags(sub);
  o->gen.AddParallelFlag(sub);
  return [o]() {
    auto questions = eval::LoadQuestions(o->questions);
    if (!questions.ok()) return Fail(questions.status());
    if (o->limit > 0 && static_cast<size_t>(o->limit) < questions->size()) questions->resize(o->limit);
    auto qsha = Sha256File(o->questions);
    if (!qsha.ok()) return Fail(qsha.status());
    auto db = OpenStore(o->db);
    if (!db.ok()) return Fail(db.status());
    store::Store& st = **db;
    auto contestant = SetUpContestant(st, o->contestant, o->src, o->gen);
    if (!contestant.ok()) return Fail(contestant.status());
    const std::string set_name = QuestionSetName(o->questions, *qsha);
    auto rows = eval::RecordQuestions(st, set_name, o->questions, *qsha, *questions);
    if (!rows.ok()) return Fail(rows.status());
    nlohmann::json run_config = {{"contestant", o->contestant}, {"questions", *qsha}, {"limit", o->limit}};
    auto run = st.StartRun("answer", fmt::format("{} on {}", o->contestant, set_name), run_config.dump());
    if (!run.ok()) return Fail(run.status());
    if (run->resumed) LogInfo(fmt::format("resuming run {}", run->id));
    const auto t0 = std::chrono::steady_clock::now();
    auto stats = eval::RunAnswerJob(st, run->id, contestant->id, *questions, *rows, *contestant->answerer, o->gen.system_prompt,
                                    [](const std::string& s) { LogInfo(s); });
    if (!stats.ok()) {
      (void)st.FinishRun(run->id, "failed");
      return Fail(stats.status());
    }
    (void)st.FinishRun(run->id, "done");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("run %lld: %lld turns answered, %lld already recorded, %.1f s\n", static_cast<long long>(run->id),
                static_cast<long long>(stats->computed), static_cast<long long>(stats->reused), secs);
    if (!o->export_path.empty()) {
      std::ofstream out(o->export_path, std::ios::binary);
      const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
      for (size_t i = 0; i < questions->size(); ++i) {
        std::vector<std::string> turns;
        for (size_t t = 1; t <= (*questions)[i].turns.size(); ++t) {
          auto a = st.FindAnswer(contestant->id, (*rows)[i], static_cast<int>(t));
          if (!a.ok()) return Fail(a.status());
          if (*a) turns.push_back(**a);
        }
        out << eval::ModelAnswerLine((*questions)[i].id, o->contestant, turns, now) << "\n";
      }
      if (!out) return Fail(Status::IoError(fmt::format("cannot write '{}'", o->export_path)));
    }
    return 0;
  };
}

}  // namespace lms::app
