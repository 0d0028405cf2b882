// Lineage of a run through the record: answer runs feed a judge run, whose battles feed a rating
// snapshot; a person's arena votes use the answers too. Each run sees its upstream and
// downstream runs and the model files involved; two runs compare side by side.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/store/lineage.h"
#include "tests/test_support.h"

namespace lms::store {

namespace {

std::vector<int64_t> Ids(const std::vector<RunInfo>& runs) {
  std::vector<int64_t> ids;
  for (const auto& r : runs) ids.push_back(r.id);
  return ids;
}

int64_t Produced(const RunLineage& l, const std::string& what) {
  for (const auto& [w, n] : l.produced)
    if (w == what) return n;
  return 0;
}

}  // namespace

TEST_CASE("A run's lineage: what it wrote, the runs it used and that used it, the model files", "[store][lineage]") {
  auto s = Store::Open(test::TempDir() + "/runs-lineage.db");
  REQUIRE(s.ok());
  Store& st = **s;
  const int64_t m1 = *st.UpsertModel("/models/one.gguf", "sha-one", "{}");
  const int64_t m2 = *st.UpsertModel("/models/two.gguf", "sha-two", "{}");
  const int64_t set = *st.UpsertQuestionSet("mini", "test", "");
  const int64_t q = *st.UpsertQuestion(set, "1", "writing", "[\"hi\"]", "[]");
  const int64_t x = *st.UpsertContestant("x", "local", m1, "{}");
  const int64_t y = *st.UpsertContestant("y", "local", m2, "{}");
  const int64_t judge = *st.UpsertContestant("judge", "local", m1, "{}");
  const int64_t ax = st.StartRun("answer", "x answers", R"({"contestant":"x","limit":0})")->id;
  const int64_t ay = st.StartRun("answer", "y answers", R"({"contestant":"y","limit":5})")->id;
  const int64_t jr = st.StartRun("judge", "judge", R"({"judge":"judge"})")->id;
  const int64_t lr = st.StartRun("leaderboard", "board", "{}")->id;
  const int64_t hr = st.StartRun("arena", "votes", R"({"voter":"human"})")->id;
  const int64_t tr = st.StartRun("train", "tiny", "{}")->id;
  const int64_t ans_x = *st.InsertAnswer({ax, x, q, 1, "hello", 3, 1.0});
  const int64_t ans_y = *st.InsertAnswer({ay, y, q, 1, "hey", 2, 1.0});
  Store::Judgment j{jr, judge, q, "pairwise", "pair-v2", 1, ans_x, ans_y, "[[A]]", std::string("A"), std::nullopt, true, "text", std::nullopt,
                    std::nullopt};
  const int64_t j1 = *st.InsertJudgment(j);
  j.answer_a = ans_y, j.answer_b = ans_x, j.raw_output = std::string("??"), j.verdict.reset(), j.parsed = false;
  const int64_t j2 = *st.InsertJudgment(j);
  Store::BattleRow b;
  b.run_id = jr, b.question_row = q, b.contestant_a = x, b.contestant_b = y, b.winner = eval::Winner::kLeft, b.source = std::string("judge");
  b.judgment_1 = j1, b.judgment_2 = j2, b.dedup_key = std::string("j");
  const int64_t battle = *st.InsertBattle(b);
  b.run_id = hr;  // a person's vote on the same answers: no judgments
  b.source = std::string("human");
  b.judgment_1.reset();
  b.judgment_2.reset();
  b.dedup_key = std::string("h");
  REQUIRE(st.InsertBattle(b).ok());
  std::vector<Store::RatingEntry> entries(2);
  entries[0].contestant = std::string("x");
  entries[1].contestant = std::string("y");
  for (auto& e : entries) e.battles = 1, e.elo = e.bt = 1000, e.bt_low = 900, e.bt_high = 1100, e.rank = 1;
  REQUIRE(st.SaveRating(lr, "{}", entries, {battle}).ok());
  REQUIRE(st.AddMetric(tr, 1, "loss", 3.0).ok());
  REQUIRE(st.AddMetric(tr, 2, "loss", 2.5).ok());
  REQUIRE(st.AddMetric(tr, 1, "lr", 0.01).ok());

  auto judge_run = LoadRunLineage(st, jr);
  REQUIRE(judge_run.ok());
  CHECK(Ids(judge_run->upstream) == std::vector<int64_t>{ax, ay});
  CHECK(Ids(judge_run->downstream) == std::vector<int64_t>{lr});
  CHECK(Produced(*judge_run, "judgments") == 2);
  CHECK(Produced(*judge_run, "unparseable judgments") == 1);
  CHECK(Produced(*judge_run, "battles") == 1);
  CHECK(Produced(*judge_run, "answers") == 0);
  REQUIRE(judge_run->models.size() == 1);
  CHECK(judge_run->models[0].contestant == "judge");
  CHECK(judge_run->models[0].role == "judged");
  CHECK(judge_run->models[0].model_path == "/models/one.gguf");
  CHECK(judge_run->models[0].sha256 == "sha-one");

  auto board = LoadRunLineage(st, lr);
  REQUIRE(board.ok());
  CHECK(Ids(board->upstream) == std::vector<int64_t>{jr});
  CHECK(board->downstream.empty());
  CHECK(board->models.size() == 2);
  CHECK(Produced(*board, "rating snapshots") == 1);

  auto answers_x = LoadRunLineage(st, ax);
  REQUIRE(answers_x.ok());
  CHECK(answers_x->upstream.empty());
  CHECK(Ids(answers_x->downstream) == std::vector<int64_t>{jr, hr});  // judged, and voted on
  REQUIRE(answers_x->models.size() == 1);
  CHECK(answers_x->models[0].model_path == "/models/one.gguf");
  CHECK(answers_x->models[0].role == "answered");
  auto votes = LoadRunLineage(st, hr);
  REQUIRE(votes.ok());
  CHECK(Ids(votes->upstream) == std::vector<int64_t>{ax, ay});

  auto train = LoadRunLineage(st, tr);
  REQUIRE(train.ok());
  REQUIRE(train->last_metrics.size() == 2);
  CHECK(train->last_metrics[0] == std::make_pair(std::string("loss"), 2.5));
  CHECK(train->last_metrics[1] == std::make_pair(std::string("lr"), 0.01));
  CHECK(Produced(*train, "metric points") == 3);

  CHECK(LoadRunLineage(st, 999).status().code() == StatusCode::kNotFound);

  auto cmp = CompareRuns(st, ax, ay);
  REQUIRE(cmp.ok());
  auto row = [&](const std::string& what) {
    auto it = std::find_if(cmp->begin(), cmp->end(), [&](const ComparisonRow& r) { return r.what == what; });
    REQUIRE(it != cmp->end());
    return *it;
  };
  CHECK(row("kind").a == "answer");
  CHECK_FALSE(row("kind").differs());
  CHECK(row("config.contestant").a == "x");
  CHECK(row("config.contestant").b == "y");
  CHECK(row("config.limit").a == "0");
  CHECK(row("config.limit").b == "5");
  CHECK(row("answers").a == "1");
  auto mixed = CompareRuns(st, tr, ax);
  REQUIRE(mixed.ok());
  bool saw_loss = false;
  for (const auto& r : *mixed)
    if (r.what == "metric loss") saw_loss = r.a == "2.5" && r.b.empty();
  CHECK(saw_loss);
}

}  // namespace lms::store
