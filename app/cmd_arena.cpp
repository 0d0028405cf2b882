// lmstation arena --questions FILE --contestants A,B,… — anonymous battles on recorded answers.
// A person votes in the terminal (a / b / t for tie / x for both bad; names are shown after the
// vote), or a judge model votes (--judge NAME --model MODEL, both orders as in `judge`). Votes
// are recorded at once; rerunning continues the same arena run. With --multi-turn a battle is
// about the whole two-turn conversation, turn 2 included.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "app/contestant_setup.h"
#include "core/eval/arena.h"
#include "core/eval/jobs.h"
#include "core/util/log.h"
#include "core/util/sha256.h"

#ifndef LMS_ASSETS_DIR
#define LMS_ASSETS_DIR "assets"
#endif

namespace lms::app {

CommandFn AddArenaCommand(CLI::App& cli) {
  struct Opts {
    std::string questions, db, judge, sampling = "uniform", voter = "human";
    ContestantSource src;
    std::vector<std::string> contestants;
    int votes = 10;
    bool multi_turn = false;
    uint64_t seed = 0;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  o->gen.n_predict = 256;
  o->gen.sampling.temperature = 0;
  auto* sub = cli.add_subcommand("arena", "Anonymous pairwise battles on recorded answers, voted by a person or a judge; resumable");
  sub->add_option("--questions", o->questions, "Question file the contestants answered")->required();
  sub->add_option("--contestants", o->contestants, "Contestant names (comma-separated, at least two)")->delimiter(',')->required();
  sub->add_option("--votes", o->votes, "Battles to hold in this session");
  sub->add_flag("--multi-turn", o->multi_turn,
                "Battle on whole two-turn conversations (turn 2 saw turn 1): the voter reads both turns; a judge judges turn 2 "
                "with the multi-turn prompts");
  sub->add_option("--sampling", o->sampling, "uniform or uncertain (pairs whose order is least settled)")->check(CLI::IsMember({"uniform", "uncertain"}));
  sub->add_option("--arena-seed", o->seed, "Seed for pairs, questions and sides");
  sub->add_option("--voter", o->voter, "Name recorded for the human voter");
  sub->add_option("--judge", o->judge, "Let this judge contestant vote instead of a person (with --model or --endpoint)");
  AddContestantSourceFlags(sub, &o->src, "judge");
  sub->add_option("--db", o->db, "Database file (default $XDG_DATA_HOME/lmstation/lmstation.db)");
  o->gen.AddSamplingFlags(sub);
  o->gen.AddRuntimeFlags(sub);
  return [o]() {
    if (o->contestants.size() < 2) return Fail(Status::InvalidArgument("an arena needs at least two contestants"));
    if (o->judge.empty() != (o->src.model.empty() && o->src.endpoint.empty())) {
      return Fail(Status::InvalidArgument("--judge goes with --model or --endpoint"));
    }
    auto questions = eval::LoadQuestions(o->questions);
    if (!questions.ok()) return Fail(questions.status());
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
    const std::vector<int64_t> ids = std::move(*found);
    nlohmann::json config = {{"contestants", o->contestants}, {"questions", *qsha}, {"sampling", o->sampling}, {"seed", o->seed},
                             {"voter", o->judge.empty() ? o->voter : o->judge}};
    if (o->multi_turn) config["multi_turn"] = true;  // a separate run: its battles are about turn 2
    auto run = st.StartRun("arena", fmt::format("arena {}", fmt::join(o->contestants, ",")), config.dump());
    if (!run.ok()) return Fail(run.status());
    std::unique_ptr<eval::Answerer> judge;
    int64_t judge_id = 0;
    std::vector<eval::JudgePrompt> prompts;
    if (!o->judge.empty()) {
      auto j = SetUpContestant(st, o->judge, o->src, o->gen);
      if (!j.ok()) return Fail(j.status());
      judge = std::move(j->answerer);
      judge_id = j->id;
      auto p = eval::LoadJudgePrompts(std::string(LMS_ASSETS_DIR) + "/eval/judge_prompts.jsonl");
      if (!p.ok()) return Fail(p.status());
      prompts = std::move(*p);
    }
    // Votes already in this run: this session numbers its votes after them and draws from its
    // own random stream, so resuming never repeats or overwrites a recorded vote.
    auto done = st.db().Query(fmt::format("SELECT COUNT(*) FROM battles WHERE run_id = {}", run->id));
    if (!done.ok()) return Fail(done.status());
    const int64_t start = std::get<int64_t>(done->rows[0][0]);
    eval::Rng rng(o->seed * 1000003 + static_cast<uint64_t>(start));
    const auto mode = o->sampling == "uncertain" ? eval::PairSampling::kUncertain : eval::PairSampling::kUniform;
    int64_t held = 0;
    for (int64_t round = 0; held < o->votes; ++round) {
      auto history = st.LoadBattles(std::nullopt);
      if (!history.ok()) return Fail(history.status());
      auto [ia, ib] = eval::ChoosePair(o->contestants, *history, mode, rng);
      const size_t qi = rng.Below(questions->size());
      const eval::Question& q = (*questions)[qi];
      const int turns = o->multi_turn && q.turns.size() > 1 ? 2 : 1;
      std::vector<std::string> ta, tb;  // each side's answers, turn by turn
      for (int t = 1; t <= turns; ++t) {
        auto a = st.FindAnswer(ids[ia], (*rows)[qi], t);
        auto b = st.FindAnswer(ids[ib], (*rows)[qi], t);
        if (!a.ok() || !b.ok()) return Fail(!a.ok() ? a.status() : b.status());
        if (!*a || !*b) break;
        ta.push_back(**a);
        tb.push_back(**b);
      }
      if (static_cast<int>(ta.size()) < turns) {
        if (round > 1000 && held == 0) return Fail(Status::NotFound("the contestants share no answered question"));
        continue;
      }
      if (judge) {
        eval::JudgeJobOptions jo;
        jo.judge_name = o->judge;
        jo.multi_turn = turns == 2;
        jo.only_turn = turns;
        auto stats = eval::RunJudgeJob(st, run->id, judge_id, {ids[ia], ids[ib]}, {q}, {(*rows)[qi]}, prompts, *judge, jo);
        if (!stats.ok()) return Fail(stats.status());
        std::printf("question %s turn %d: %s vs %s judged (%lld battle)\n", q.id.c_str(), turns, o->contestants[ia].c_str(),
                    o->contestants[ib].c_str(), static_cast<long long>(stats->battles));
        ++held;
        continue;
      }
      std::printf("\n=== battle %lld, question %s (%s)\n", static_cast<long long>(start + held + 1), q.id.c_str(), q.category.c_str());
      for (int t = 0; t < turns; ++t) {
        if (turns > 1) std::printf("\n##### turn %d\n", t + 1);
        std::printf("%s\n\n--- Model A ---\n%s\n\n--- Model B ---\n%s\n\n", q.turns[t].c_str(), ta[t].c_str(), tb[t].c_str());
      }
      std::optional<eval::Winner> w;
      std::string line;
      while (!w) {
        std::printf("Your vote: [a] A is better, [b] B is better, [t] tie, [x] both bad, [q] quit > ");
        std::fflush(stdout);
        if (!std::getline(std::cin, line) || line == "q") {
          (void)st.FinishRun(run->id, "paused");
          std::printf("\n%lld votes recorded this session\n", static_cast<long long>(held));
          return 0;
        }
        if (line == "a") w = eval::Winner::kLeft;
        else if (line == "b") w = eval::Winner::kRight;
        else if (line == "t") w = eval::Winner::kTie;
        else if (line == "x") w = eval::Winner::kBothBad;
      }
      store::Store::BattleRow row;
      row.run_id = run->id;
      row.question_row = (*rows)[qi];
      row.contestant_a = ids[ia];
      row.contestant_b = ids[ib];
      row.winner = *w;
      row.source = "human";
      row.voter = o->voter;
      row.dedup_key = fmt::format("arena:{}:{}", run->id, start + held);
      auto b = st.InsertBattle(row);
      if (!b.ok()) return Fail(b.status());
      std::printf("A was %s, B was %s\n", o->contestants[ia].c_str(), o->contestants[ib].c_str());
      ++held;
    }
    (void)st.FinishRun(run->id, "done");
    return 0;
  };
}

}  // namespace lms::app
