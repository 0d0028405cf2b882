// FastChat judgment files in and out of the record: GPT-4's real single-answer grades round-trip
// field for field; pair files become two judgments and a battle per line, with FastChat's rule
// for inconsistent games (a tie) and errors (no battle); re-importing changes nothing.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/eval/fastchat_judgments.h"
#include "core/eval/jobs.h"
#include "tests/test_support.h"

namespace lms::eval {
namespace {

std::vector<nlohmann::json> Lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

int64_t Count(store::Store& st, const std::string& sql) {
  auto t = st.db().Query(sql);
  REQUIRE(t.ok());
  return std::get<int64_t>(t->rows[0][0]);
}

}  // namespace

TEST_CASE("GPT-4's single-answer judgments import and export unchanged", "[eval][fastchat]") {
  auto data = test::SharedDataDir();
  if (!data) LMS_SKIP("shared data not found");
  const std::string qpath = *data + "/eval/mt_bench_fastchat/mt_bench/question.jsonl";
  const std::string apath = *data + "/eval/judge_parsing/model_answer_granite-7b-lab.jsonl";
  const std::string jpath = *data + "/eval/judge_parsing/model_judgment_gpt-4_single.jsonl";
  auto st = store::Store::Open(test::TempDir() + "/fastchat_single.db");
  REQUIRE(st.ok());
  auto qs = LoadQuestions(qpath);
  REQUIRE(qs.ok());
  auto rows = RecordQuestions(**st, "mt_bench", qpath, "x", *qs);
  REQUIRE(rows.ok());
  auto run = (*st)->StartRun("import", "test", "{}");
  REQUIRE(run.ok());
  auto answers = ImportFastChatAnswers(**st, run->id, *qs, *rows, apath, "granite-7b-lab");
  REQUIRE(answers.ok());
  CHECK(answers->answers == 160);  // 80 questions, 2 turns

  auto text = ReadWholeFile(jpath);
  REQUIRE(text.ok());
  const auto original = Lines(*text);
  REQUIRE(original.size() == 160);
  int64_t minus_one = 0;
  for (const auto& j : original) minus_one += j["score"] == -1;

  auto imported = ImportFastChatJudgments(**st, run->id, *qs, *rows, jpath, "sha");
  REQUIRE(imported.ok());
  CHECK(imported->judgments == 160);
  CHECK(imported->skipped == 0);
  CHECK(imported->unparseable == minus_one);
  CHECK(imported->battles == 0);
  auto again = ImportFastChatJudgments(**st, run->id, *qs, *rows, jpath, "sha");
  REQUIRE(again.ok());
  CHECK(Count(**st, "SELECT COUNT(*) FROM judgments") == 160);
  CHECK(Count(**st, "SELECT COUNT(*) FROM judgments WHERE parsed = 0 AND method = 'import'") == minus_one);

  auto out = ExportFastChatJudgments(**st, "gpt-4", "single");
  REQUIRE(out.ok());
  auto exported = Lines(*out);
  REQUIRE(exported.size() == original.size());
  // Same lines, ordered by question, model and turn in the export.
  auto key = [](const nlohmann::json& j) { return std::make_pair(j["question_id"].get<int>(), j["turn"].get<int>()); };
  std::map<std::pair<int, int>, nlohmann::json> by_key;
  for (const auto& j : original) by_key[key(j)] = j;
  for (const auto& e : exported) {
    auto it = by_key.find(key(e));
    REQUIRE(it != by_key.end());
    for (const char* f : {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn"}) {
      CAPTURE(f, e["question_id"]);
      CHECK(e[f] == it->second[f]);
    }
    CHECK(e["tstamp"].is_number());
  }
}

TEST_CASE("FastChat pair judgments become both orders and one battle per parseable line", "[eval][fastchat]") {
  const std::string dir = test::TempDir();
  auto st = store::Store::Open(dir + "/fastchat_pair.db");
  REQUIRE(st.ok());
  std::vector<Question> qs(4);
  for (int i = 0; i < 4; ++i) {
    qs[i].id = std::to_string(101 + i);
    qs[i].category = "writing";
    qs[i].turns = {"q" + qs[i].id};
  }
  auto rows = RecordQuestions(**st, "set", "set.jsonl", "x", qs);
  REQUIRE(rows.ok());
  auto run = (*st)->StartRun("import", "pairs", "{}");
  REQUIRE(run.ok());
  {
    std::ofstream a(dir + "/x.jsonl"), b(dir + "/y.jsonl");
    for (const auto& q : qs) {
      a << nlohmann::json({{"question_id", std::stoi(q.id)}, {"model_id", "x"}, {"choices", {{{"index", 0}, {"turns", {"x says " + q.id}}}}}}).dump() << "\n";
      b << nlohmann::json({{"question_id", std::stoi(q.id)}, {"model_id", "y"}, {"choices", {{{"index", 0}, {"turns", {"y says " + q.id}}}}}}).dump() << "\n";
    }
  }
  REQUIRE(ImportFastChatAnswers(**st, run->id, qs, *rows, dir + "/x.jsonl", "x").ok());
  REQUIRE(ImportFastChatAnswers(**st, run->id, qs, *rows, dir + "/y.jsonl", "y").ok());
  // (g1, g2): model_1 twice -> left; model_1 then model_2 -> inconsistent, tie; tie twice -> tie;
  // an error game -> judgments kept, no battle.
  const std::vector<std::pair<std::string, std::string>> games = {
      {"model_1", "model_1"}, {"model_1", "model_2"}, {"tie", "tie"}, {"error", "model_2"}};
  std::vector<nlohmann::ordered_json> lines;
  for (size_t i = 0; i < games.size(); ++i) {
    nlohmann::ordered_json j;
    j["question_id"] = 101 + static_cast<int>(i);
    j["model_1"] = "x";
    j["model_2"] = "y";
    j["g1_winner"] = games[i].first;
    j["g2_winner"] = games[i].second;
    j["judge"] = {"gpt-4", "pair-v2"};
    j["g1_user_prompt"] = "prompt 1 of " + std::to_string(i);
    j["g1_judgment"] = "judgment 1 of " + std::to_string(i);
    j["g2_user_prompt"] = "prompt 2 of " + std::to_string(i);
    j["g2_judgment"] = "judgment 2 of " + std::to_string(i);
    j["turn"] = 1;
    j["tstamp"] = 1700000000.5;
    lines.push_back(j);
  }
  {
    std::ofstream f(dir + "/gpt-4_pair.jsonl");
    for (const auto& j : lines) f << j.dump() << "\n";
  }
  auto imported = ImportFastChatJudgments(**st, run->id, qs, *rows, dir + "/gpt-4_pair.jsonl", "p");
  REQUIRE(imported.ok());
  CHECK(imported->judgments == 8);
  CHECK(imported->unparseable == 1);
  CHECK(imported->battles == 3);
  CHECK(imported->inconsistent == 1);
  REQUIRE(ImportFastChatJudgments(**st, run->id, qs, *rows, dir + "/gpt-4_pair.jsonl", "p").ok());
  CHECK(Count(**st, "SELECT COUNT(*) FROM judgments") == 8);
  CHECK(Count(**st, "SELECT COUNT(*) FROM battles") == 3);

  auto battles = (*st)->LoadBattles(run->id);
  REQUIRE(battles.ok());
  REQUIRE(battles->size() == 3);
  CHECK(battles->models()[battles->battles()[0].left] == "x");
  CHECK(battles->battles()[0].winner == Winner::kLeft);
  CHECK(battles->battles()[1].winner == Winner::kTie);
  CHECK(battles->battles()[2].winner == Winner::kTie);
  // Game 2 showed y as A: its verdict for model_2 ("y") is A.
  CHECK(Count(**st, "SELECT COUNT(*) FROM judgments j JOIN answers a ON a.id = j.answer_a JOIN contestants c ON c.id = a.contestant_id "
                    "WHERE c.name = 'y' AND j.verdict = 'A'") == 2);

  auto out = ExportFastChatJudgments(**st, "gpt-4", "pairwise");
  REQUIRE(out.ok());
  auto exported = Lines(*out);
  REQUIRE(exported.size() == lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    for (const char* f : {"question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge", "g1_user_prompt", "g1_judgment",
                          "g2_user_prompt", "g2_judgment", "turn"}) {
      CAPTURE(i, f);
      CHECK(exported[i][f] == nlohmann::json(lines[i][f]));
    }
  }
  CHECK(!ExportFastChatJudgments(**st, "nobody", "pairwise").ok());
  CHECK(!ExportFastChatJudgments(**st, "gpt-4", "both").ok());
}

}  // namespace lms::eval
