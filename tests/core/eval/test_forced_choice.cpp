// The forced-choice verdict method of the judge job: the verdict is the most probable option,
// the probabilities are stored with the judgment, both orders still make one battle, and the
// method is refused by a backend that cannot score options.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/eval/jobs.h"
#include "tests/test_support.h"

namespace lms::eval {
namespace {

// Answers with fixed text; scores options so that whichever answer text contains "good" is
// preferred, whatever side it is shown on.
class ScriptedJudge : public Answerer {
 public:
  int scored = 0;
  std::vector<std::string> last_options;
  std::string last_prefix;
  Result<AnswerText> Reply(const std::vector<ChatMessage>&) override { return AnswerText{"no verdict here", 3, 1.0}; }
  Result<std::vector<double>> OptionLogProbs(const std::vector<ChatMessage>& conv, const std::string& prefix,
                                             const std::vector<std::string>& options) override {
    ++scored;
    last_options = options;
    last_prefix = prefix;
    const std::string& user = conv.back().content;
    // The good answer is inside <answer A> … </answer A> when it is shown as A.
    const size_t good = user.find("good answer");
    const size_t end_a = user.find("</answer A>");
    const bool a_good = good != std::string::npos && good < end_a;
    std::vector<double> lps(options.size(), std::log(0.05));
    if (options.size() == 3) {
      lps[a_good ? 0 : 1] = std::log(0.6);
      lps[2] = std::log(0.2);
    }
    return lps;
  }
};

class TextOnly : public Answerer {
 public:
  Result<AnswerText> Reply(const std::vector<ChatMessage>&) override { return AnswerText{"[[A]]", 1, 1.0}; }
};

}  // namespace

TEST_CASE("Forced-choice judging stores probabilities and the most probable verdict", "[eval][judge][choice]") {
  auto s = store::Store::Open(test::TempDir() + "/forced.db");
  REQUIRE(s.ok());
  store::Store& st = **s;
  std::vector<Question> qs(1);
  qs[0].id = "1";
  qs[0].category = "writing";
  qs[0].turns = {"Write something."};
  auto rows = RecordQuestions(st, "set", "set.jsonl", "00", qs);
  REQUIRE(rows.ok());
  auto good = st.UpsertContestant("good", "external", std::nullopt, "{}");
  auto bad = st.UpsertContestant("bad", "external", std::nullopt, "{}");
  auto judge_id = st.UpsertContestant("judge", "external", std::nullopt, "{}");
  REQUIRE((good.ok() && bad.ok() && judge_id.ok()));
  auto run = st.StartRun("judge", "test", "{}");
  REQUIRE(run.ok());
  REQUIRE(st.InsertAnswer({run->id, *good, (*rows)[0], 1, "a good answer", 3, 0}).ok());
  REQUIRE(st.InsertAnswer({run->id, *bad, (*rows)[0], 1, "a poor answer", 3, 0}).ok());
  auto prompts = LoadJudgePrompts(std::string(LMS_SOURCE_DIR) + "/assets/eval/judge_prompts.jsonl");
  REQUIRE(prompts.ok());

  ScriptedJudge judge;
  JudgeJobOptions o;
  o.judge_name = "judge";
  o.verdict = "logprob";
  auto stats = RunJudgeJob(st, run->id, *judge_id, {*good, *bad}, qs, *rows, *prompts, judge, o);
  REQUIRE(stats.ok());
  CHECK(judge.scored == 2);
  CHECK(judge.last_prefix == "[[");
  CHECK(judge.last_options == std::vector<std::string>{"A]]", "B]]", "C]]"});
  CHECK(stats->computed == 2);
  CHECK(stats->unparseable == 0);
  CHECK(stats->battles == 1);
  CHECK(stats->inconsistent == 0);

  auto t = st.db().Query("SELECT method, raw_output, verdict, probabilities FROM judgments ORDER BY id");
  REQUIRE(t.ok());
  REQUIRE(t->rows.size() == 2);
  CHECK(std::get<std::string>(t->rows[0][0]) == "logprob");
  CHECK(std::get<std::string>(t->rows[0][1]) == "[[A]]");  // good shown as A first
  CHECK(std::get<std::string>(t->rows[1][2]) == "B");      // then shown as B
  auto probs = nlohmann::json::parse(std::get<std::string>(t->rows[0][3]));
  CHECK(probs["A"].get<double>() == Approx(0.6));
  CHECK(probs["C"].get<double>() == Approx(0.2));
  auto b = st.db().Query("SELECT winner FROM battles");
  REQUIRE(b.ok());
  REQUIRE(b->rows.size() == 1);
  CHECK(std::get<std::string>(b->rows[0][0]) == "left");  // good was the left contestant

  // Grades: ten options, the most probable one is the score.
  o.mode = "single";
  judge.scored = 0;
  auto single = RunJudgeJob(st, run->id, *judge_id, {*good}, qs, *rows, *prompts, judge, o);
  REQUIRE(single.ok());
  CHECK(judge.last_options.size() == 10);
  CHECK(judge.last_options.back() == "10]]");
  auto g = st.db().Query("SELECT score, method FROM judgments WHERE answer_b IS NULL");
  REQUIRE(g.ok());
  REQUIRE(g->rows.size() == 1);
  CHECK(std::get<double>(g->rows[0][0]) == 1.0);  // all equal: the first label

  // A backend that cannot score options is refused, not silently judged by text.
  TextOnly text;
  auto other = st.UpsertContestant("judge2", "external", std::nullopt, "{}");
  REQUIRE(other.ok());
  o.mode = "pairwise";
  auto refused = RunJudgeJob(st, run->id, *other, {*good, *bad}, qs, *rows, *prompts, text, o);
  CHECK(!refused.ok());
  o.verdict = "sometimes";
  CHECK(!RunJudgeJob(st, run->id, *other, {*good, *bad}, qs, *rows, *prompts, text, o).ok());
}

}  // namespace lms::eval
