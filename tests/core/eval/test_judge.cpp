// Verdict parsing against FastChat's own parse of 160 real GPT-4 judgments (120 of which it
// could not parse), and judge prompt loading from FastChat's judge_prompts.jsonl.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sstream>

#include "core/eval/battles.h"
#include "core/eval/judge.h"
#include "tests/test_support.h"

namespace lms::eval {

TEST_CASE("Rating parsing agrees with FastChat on real judgments", "[eval][judge]") {
  auto dir = test::SharedDataDir();
  if (!dir) LMS_SKIP("shared data (eval/judge_parsing) not present");
  auto text = ReadWholeFile(*dir + "/eval/judge_parsing/model_judgment_gpt-4_single.jsonl");
  REQUIRE(text.ok());
  std::istringstream in(*text);
  std::string line;
  int total = 0, unparseable = 0, scored = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    const double want = j["score"].get<double>();  // FastChat wrote -1 when it could not parse
    auto got = ParseRating(j["judgment"].get<std::string>());
    INFO("question " << j["question_id"] << " turn " << j["turn"]);
    if (want == -1) {
      CHECK_FALSE(got.has_value());
      ++unparseable;
    } else {
      REQUIRE(got.has_value());
      CHECK(*got == want);
      ++scored;
    }
    ++total;
  }
  CHECK(total == 160);
  CHECK(unparseable == 120);
  CHECK(scored == 40);
}

TEST_CASE("Rating and pair verdict fallbacks", "[eval][judge]") {
  CHECK(ParseRating("Rating: [[7]]") == 7.0);
  CHECK(ParseRating("so [[8.5]] and later [[2]]") == 8.5);  // the first match
  CHECK(ParseRating("score [6] only single brackets") == 6.0);
  CHECK(ParseRating("[3] then [[9]]") == 9.0);  // double brackets win over an earlier single
  CHECK_FALSE(ParseRating("I rate it 7/10").has_value());
  CHECK_FALSE(ParseRating("[[seven]]").has_value());

  CHECK(ParsePairVerdict("... [[A]]") == PairVerdict::kA);
  CHECK(ParsePairVerdict("[[B]]") == PairVerdict::kB);
  CHECK(ParsePairVerdict("It's a tie: [[C]]") == PairVerdict::kTie);
  CHECK(ParsePairVerdict("[[B]] or maybe [[A]]") == PairVerdict::kA);  // FastChat checks A first
  CHECK(ParsePairVerdict("Assistant A is better") == PairVerdict::kError);
  CHECK(ParsePairVerdict("[[7, 3]]", "[[rating_a,rating_b]]") == PairVerdict::kA);
  CHECK(ParsePairVerdict("[4.0,4.05]", "[[rating_a,rating_b]]") == PairVerdict::kTie);
  CHECK(ParsePairVerdict("[[2,9]]", "[[rating_a,rating_b]]") == PairVerdict::kB);
  CHECK(ParsePairVerdict("no scores", "[[rating_a,rating_b]]") == PairVerdict::kError);
}

TEST_CASE("Templates format like Python str.format with named fields", "[eval][judge]") {
  auto r = FormatTemplate("Q: {question} {{literal}} A: {answer}", {{"question", "why?"}, {"answer", "{x}"}});
  REQUIRE(r.ok());
  CHECK(*r == "Q: why? {literal} A: {x}");
  auto missing = FormatTemplate("{question} {ref_answer_1}", {{"question", "q"}});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("ref_answer_1") != std::string::npos);
  CHECK_FALSE(FormatTemplate("a } b", {}).ok());
  CHECK_FALSE(FormatTemplate("a { b", {}).ok());
}

TEST_CASE("FastChat's and our judge prompts load and fill", "[eval][judge]") {
  // Every field any MT-Bench judge template uses.
  std::map<std::string, std::string> all;
  for (const char* k : {"question", "answer", "answer_a", "answer_b", "ref_answer_1", "question_1", "question_2", "answer_1", "answer_2",
                        "answer_a_1", "answer_a_2", "answer_b_1", "answer_b_2", "ref_answer_2"}) {
    all[k] = std::string("<") + k + ">";
  }
  std::vector<std::string> files = {std::string(LMS_SOURCE_DIR) + "/assets/eval/judge_prompts.jsonl"};
  auto dir = test::SharedDataDir();
  if (dir) files.push_back(*dir + "/eval/mt_bench_fastchat/judge_prompts.jsonl");
  for (const auto& path : files) {
    INFO(path);
    auto prompts = LoadJudgePrompts(path);
    REQUIRE(prompts.ok());
    REQUIRE(prompts->size() == 8);
    for (const char* name : {"pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn", "single-v1", "single-math-v1",
                             "single-v1-multi-turn", "single-math-v1-multi-turn"}) {
      const JudgePrompt* p = FindJudgePrompt(*prompts, name);
      REQUIRE(p != nullptr);
      auto filled = FormatTemplate(p->prompt_template, all);
      REQUIRE(filled.ok());
      CHECK(filled->find('<') != std::string::npos);
      CHECK(p->multi_turn() == (std::string(name).find("multi-turn") != std::string::npos));
    }
  }
  CHECK_FALSE(ParseJudgePrompts("{\"name\":\"x\",\"type\":\"single\",\"prompt_template\":\"t\"}\n").ok());
  CHECK_FALSE(ParseJudgePrompts("{\"name\":\"x\",\"type\":\"triple\",\"prompt_template\":\"t\",\"output_format\":\"[[A]]\"}\n").ok());
}

}  // namespace lms::eval
