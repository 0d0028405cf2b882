// The record: schema and pragmas, idempotent writers, lineage from a rating back to model files,
// exports, and the file staying readable by another SQLite connection.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/store/store.h"
#include "tests/test_support.h"

namespace lms::store {

TEST_CASE("Store opens with WAL, foreign keys and the current schema version", "[store]") {
  const std::string path = test::TempDir() + "/nested/dir/a.db";
  auto s = Store::Open(path);
  REQUIRE(s.ok());
  CHECK((*s)->user_version() == SchemaVersion());
  auto mode = (*s)->db().Query("PRAGMA journal_mode");
  REQUIRE(mode.ok());
  CHECK(ValueToString(mode->rows[0][0]) == "wal");
  auto fk = (*s)->db().Query("PRAGMA foreign_keys");
  REQUIRE(fk.ok());
  CHECK(ValueToString(fk->rows[0][0]) == "1");
  // A foreign key violation is refused.
  CHECK_FALSE((*s)->db().Exec("INSERT INTO answers(contestant_id, question_id, turn, text) VALUES (99, 99, 1, 'x')").ok());
  s->reset();
  // Reopening migrates nothing and keeps the version.
  auto again = Store::Open(path);
  REQUIRE(again.ok());
  CHECK((*again)->user_version() == SchemaVersion());
  // A database from a newer lmstation is refused, not damaged.
  REQUIRE((*again)->db().Exec("PRAGMA user_version = 999").ok());
  again->reset();
  auto newer = Store::Open(path);
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.status().message().find("newer") != std::string::npos);
}

TEST_CASE("Writers are idempotent and a rating walks back to its model files", "[store]") {
  auto s = Store::Open(test::TempDir() + "/lineage.db");
  REQUIRE(s.ok());
  Store& st = **s;
  auto model = st.UpsertModel("/models/m.gguf", "abc123", "{}");
  REQUIRE(model.ok());
  CHECK(*st.UpsertModel("/models/m.gguf", "abc123", "{}") == *model);
  auto run = st.StartRun("answer", "test", "{\"x\":1}");
  REQUIRE(run.ok());
  CHECK_FALSE(run->resumed);
  auto rerun = st.StartRun("answer", "test", "{\"x\":1}");
  REQUIRE(rerun.ok());
  CHECK(rerun->resumed);
  CHECK(rerun->id == run->id);
  auto set = st.UpsertQuestionSet("mini", "test", "");
  REQUIRE(set.ok());
  auto q = st.UpsertQuestion(*set, "1", "writing", "[\"hi\"]", "[]");
  REQUIRE(q.ok());
  auto a = st.UpsertContestant("a", "local", *model, "{\"temp\":0}");
  auto b = st.UpsertContestant("b", "local", *model, "{\"temp\":1}");
  auto judge = st.UpsertContestant("judge", "local", *model, "{}");
  REQUIRE((a.ok() && b.ok() && judge.ok()));
  CHECK_FALSE(st.UpsertContestant("a", "local", *model, "{\"temp\":2}").ok());  // same name, other settings
  auto ans_a = st.InsertAnswer({run->id, *a, *q, 1, "hello", 3, 12.5});
  auto ans_b = st.InsertAnswer({run->id, *b, *q, 1, "hey", 2, 10.0});
  REQUIRE((ans_a.ok() && ans_b.ok()));
  CHECK(*st.InsertAnswer({run->id, *a, *q, 1, "other text", 3, 1.0}) == *ans_a);  // kept, not duplicated
  CHECK(*st.FindAnswer(*a, *q, 1) == std::optional<std::string>("hello"));

  Store::Judgment j1{run->id, *judge, *q, "pairwise", "pair-v2", 1, *ans_a, *ans_b, "[[A]]", std::string("A"), std::nullopt, true, "text", std::nullopt, std::nullopt};
  Store::Judgment j2{run->id, *judge, *q, "pairwise", "pair-v2", 1, *ans_b, *ans_a, "no idea", std::nullopt, std::nullopt, false, "text", std::nullopt, std::nullopt};
  auto id1 = st.InsertJudgment(j1);
  auto id2 = st.InsertJudgment(j2);
  REQUIRE((id1.ok() && id2.ok()));
  CHECK(*st.InsertJudgment(j1) == *id1);
  Store::Judgment single{run->id, *judge, *q, "single", "single-v1", 1, *ans_a, std::nullopt, "[[7]]", std::nullopt, 7.0, true, "text", std::nullopt, std::nullopt};
  auto s1 = st.InsertJudgment(single);
  REQUIRE(s1.ok());
  CHECK(*st.InsertJudgment(single) == *s1);  // NULL answer_b still deduplicates

  Store::BattleRow br;
  br.run_id = run->id;
  br.question_row = *q;
  br.contestant_a = *a;
  br.contestant_b = *b;
  br.winner = eval::Winner::kTie;  // inconsistent orders count as a tie
  br.source = "judge";
  br.voter = "judge";
  br.judgment_1 = *id1;
  br.judgment_2 = *id2;
  br.dedup_key = "judge:1";
  auto battle = st.InsertBattle(br);
  REQUIRE(battle.ok());
  CHECK(*st.InsertBattle(br) == *battle);
  std::vector<int64_t> ids;
  auto loaded = st.LoadBattles(run->id, &ids);
  REQUIRE(loaded.ok());
  REQUIRE(loaded->size() == 1);
  CHECK(loaded->battles()[0].question == "1");
  auto rating = st.SaveRating(run->id, "{}", {{"a", 1, 1000, 1000, 990, 1010, 1}, {"b", 1, 1000, 1000, 990, 1010, 1}}, ids);
  REQUIRE(rating.ok());
  CHECK_FALSE(st.SaveRating(run->id, "{}", {{"nobody", 1, 0, 0, 0, 0, 1}}, ids).ok());

  // Lineage: rating -> battles -> judgments -> answers -> contestants -> model files.
  auto walk = st.db().Query(
      "SELECT DISTINCT m.path, m.sha256, j.raw_output FROM rating_battles rb JOIN battles b ON b.id = rb.battle_id "
      "JOIN judgments j ON j.id IN (b.judgment_1, b.judgment_2) JOIN answers an ON an.id IN (j.answer_a, j.answer_b) "
      "JOIN contestants c ON c.id = an.contestant_id JOIN models m ON m.id = c.model_id WHERE rb.rating_id = " + std::to_string(*rating) +
      " ORDER BY j.id");
  REQUIRE(walk.ok());
  REQUIRE(walk->rows.size() == 2);
  CHECK(ValueToString(walk->rows[0][0]) == "/models/m.gguf");
  CHECK(ValueToString(walk->rows[1][2]) == "no idea");  // the unparseable output is kept

  auto unparsed = st.db().Query("SELECT COUNT(*) FROM judgments WHERE parsed = 0");
  CHECK(ValueToString(unparsed->rows[0][0]) == "1");
  auto runs = st.ListRuns();
  REQUIRE(runs.ok());
  CHECK(runs->size() == 1);
  REQUIRE(st.FinishRun(run->id, "done").ok());
  REQUIRE(st.AddMetric(run->id, 1, "loss", 2.5).ok());
  REQUIRE(st.AddMetric(run->id, 1, "loss", 2.25).ok());  // a rewritten step replaces its value

  auto t = st.ExportTable("answers");
  REQUIRE(t.ok());
  CHECK(t->rows.size() == 2);
  auto json = nlohmann::json::parse(TableToJson(*t));
  CHECK(json[0]["text"] == "hello");
  CHECK(json[0]["latency_ms"] == 12.5);
  CHECK(TableToCsv(*t).rfind("id,run_id,contestant_id", 0) == 0);
  CHECK_FALSE(st.ExportTable("sqlite_master").ok());
  auto metric = st.ExportTable("metrics");
  CHECK(ValueToString(metric->rows[0][3]) == "2.25");
}

TEST_CASE("Another connection sees committed rows while the store is open", "[store]") {
  const std::string path = test::TempDir() + "/shared.db";
  auto writer = Store::Open(path);
  REQUIRE(writer.ok());
  REQUIRE((*writer)->UpsertQuestionSet("s", "", "").ok());
  auto reader = Database::Open(path);
  REQUIRE(reader.ok());
  auto t = (*reader)->Query("SELECT name FROM question_sets");
  REQUIRE(t.ok());
  REQUIRE(t->rows.size() == 1);
  CHECK(ValueToString(t->rows[0][0]) == "s");
  CHECK_FALSE((*reader)->Query("SELECT * FROM no_such_table").ok());
}

}  // namespace lms::store

namespace lms::store {

TEST_CASE("A version-2 record migrates to chat_turns and keeps its runs; chat turns are saved once, in order", "[store][chat]") {
  const std::string path = test::TempDir() + "/chat_migrate.db";
  {
    auto s = Store::Open(path);
    REQUIRE(s.ok());
    REQUIRE(SchemaVersion() >= 3);
    REQUIRE((*s)->StartRun("answer", "older", "{}").ok());
    // Back to what a version-2 lmstation wrote: no chat_turns table.
    REQUIRE((*s)->db().Exec("DROP TABLE chat_turns; PRAGMA user_version = 2").ok());
  }
  auto s = Store::Open(path);
  REQUIRE(s.ok());
  Store& st = **s;
  CHECK(st.user_version() == SchemaVersion());
  auto runs = st.ListRuns();
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  CHECK((*runs)[0].name == "older");

  auto run = st.StartRun("chat", "What is 2+2?", R"({"model":"m.gguf","id":"c1"})");
  REQUIRE(run.ok());
  REQUIRE(st.AddChatTurn(run->id, {1, "assistant", "4", 2}).ok());
  REQUIRE(st.AddChatTurn(run->id, {0, "user", "What is 2+2?", std::nullopt}).ok());
  REQUIRE(st.AddChatTurn(run->id, {1, "assistant", "changed", 9}).ok());  // saved again: kept as it was
  CHECK_FALSE(st.AddChatTurn(run->id, {2, "robot", "?", std::nullopt}).ok());  // not a role
  CHECK_FALSE(st.AddChatTurn(run->id + 100, {0, "user", "x", std::nullopt}).ok());  // no such run
  auto turns = st.ListChatTurns(run->id);
  REQUIRE(turns.ok());
  REQUIRE(turns->size() == 2);
  CHECK((*turns)[0].role == "user");
  CHECK((*turns)[0].content == "What is 2+2?");
  CHECK_FALSE((*turns)[0].tokens.has_value());
  CHECK((*turns)[1].content == "4");
  CHECK((*turns)[1].tokens == std::optional<int64_t>(2));
  // Deleting the run deletes its turns.
  REQUIRE(st.db().Exec("DELETE FROM runs WHERE kind = 'chat'").ok());
  CHECK(st.ListChatTurns(run->id)->empty());
}

}  // namespace lms::store
