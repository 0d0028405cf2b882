// Agreement analysis on small hand-counted cases, and on the llmfao crowd and GPT votes.
#include <catch2/catch.hpp>

#include <map>

#include "core/eval/agreement.h"
#include "core/eval/battles.h"
#include "tests/test_support.h"

namespace lms::eval {

TEST_CASE("Agreement counts vote pairs as the MT-Bench paper does", "[eval][agreement]") {
  // Question q1, pair (a, b): humans say a, a, tie; the judge says a (shown in the other order).
  auto human = ParseBattlesCsv(
      "question,left,right,winner,voter\n"
      "q1,a,b,left,h1\nq1,b,a,right,h2\nq1,a,b,tie,h3\n"
      "q2,a,c,right,h1\nq2,a,c,left,h2\n");
  auto judge = ParseBattlesCsv("question,left,right,winner\nq1,b,a,right\nq2,c,a,left\nq3,a,b,left\n");
  REQUIRE(human.ok());
  REQUIRE(judge.ok());
  AgreementReport jh = JudgeHumanAgreement(*judge, *human);
  CHECK(jh.shared_items == 2);
  // q1: judge a vs {a, a, tie} -> 2/3; q2: judge c vs {c, a} -> 1/2. With ties 3/5.
  CHECK(jh.with_ties.agree == 3);
  CHECK(jh.with_ties.total == 5);
  // Without ties: q1 drops the tie vote -> 2/2; q2 1/2 -> 3/4.
  CHECK(jh.without_ties.agree == 3);
  CHECK(jh.without_ties.total == 4);

  AgreementReport hh = HumanHumanAgreement(*human);
  // q1 pairs: (a,a) agree, (a,tie), (a,tie) -> 1/3; q2: (c,a) -> 0/1.
  CHECK(hh.with_ties.agree == 1);
  CHECK(hh.with_ties.total == 4);
  CHECK(hh.without_ties.agree == 1);
  CHECK(hh.without_ties.total == 2);
}

TEST_CASE("Position consistency pairs a judge's two orders", "[eval][agreement]") {
  auto judge = ParseBattlesCsv(
      "question,left,right,winner,voter\n"
      "1,a,b,left,j\n1,b,a,right,j\n"    // a both times: consistent
      "2,a,b,left,j\n2,b,a,left,j\n"     // follows position: inconsistent
      "3,a,c,tie,j\n3,c,a,tie,j\n"       // tie both times: consistent
      "4,b,c,left,j\n");                 // one order only: not counted
  REQUIRE(judge.ok());
  ConsistencyReport c = PositionConsistency(*judge);
  CHECK(c.pairs_both_orders == 3);
  CHECK(c.consistent == 2);
  // The inconsistent pair counts as a tie against humans.
  auto human = ParseBattlesCsv("question,left,right,winner\n2,a,b,tie\n1,a,b,left\n");
  REQUIRE(human.ok());
  AgreementReport r = JudgeHumanAgreement(*judge, *human);
  CHECK(r.with_ties.agree == 2);
  CHECK(r.with_ties.total == 2);
}

TEST_CASE("Agreement runs on the llmfao crowd and GPT-4 votes", "[eval][agreement]") {
  auto dir = test::SharedDataDir();
  if (!dir) LMS_SKIP("shared data (eval/llmfao) not present");
  auto human = LoadBattlesFile(*dir + "/eval/llmfao/crowd-comparisons.csv");
  auto gpt4 = LoadBattlesFile(*dir + "/eval/llmfao/gpt4-crowd-comparisons.csv");
  REQUIRE(human.ok());
  REQUIRE(gpt4.ok());
  CHECK(human->size() == 8931);
  CHECK(gpt4->size() == 2139);
  AgreementReport jh = JudgeHumanAgreement(*gpt4, *human);
  CHECK(jh.shared_items == 2139);  // every GPT-4 pair was also voted on by the crowd
  CHECK(jh.with_ties.total == 8931);
  AgreementReport hh = HumanHumanAgreement(*human);
  CHECK(hh.shared_items > 2000);
  // Both rates are probabilities well away from the trivial ends on real votes.
  CHECK(jh.without_ties.rate() > 0.5);
  CHECK(jh.without_ties.rate() < 1.0);
  CHECK(PositionConsistency(*gpt4).pairs_both_orders == 0);  // llmfao judged each pair once
}

}  // namespace lms::eval

#include "core/eval/arena.h"

namespace lms::eval {

TEST_CASE("Arena pair sampling: uniform covers all pairs, uncertain prefers unsettled pairs", "[eval][arena]") {
  std::vector<std::string> names = {"a", "b", "c"};
  BattleSet history;
  int a = history.Intern("a"), b = history.Intern("b"), c = history.Intern("c");
  // a beats b and c almost always; b and c are even and met as often.
  for (int k = 0; k < 20; ++k) {
    history.Add(a, b, k < 19 ? Winner::kLeft : Winner::kRight);
    history.Add(a, c, k < 19 ? Winner::kLeft : Winner::kRight);
    history.Add(b, c, k % 2 ? Winner::kLeft : Winner::kRight);
  }
  Rng rng(1);
  std::map<std::pair<int, int>, int> seen;
  for (int k = 0; k < 300; ++k) {
    auto p = ChoosePair(names, history, PairSampling::kUniform, rng);
    REQUIRE(p.first != p.second);
    seen[{std::min(p.first, p.second), std::max(p.first, p.second)}]++;
  }
  CHECK(seen.size() == 3);
  for (int k = 0; k < 20; ++k) {
    auto p = ChoosePair(names, history, PairSampling::kUncertain, rng);
    CHECK(std::min(p.first, p.second) == 1);  // b vs c
    CHECK(std::max(p.first, p.second) == 2);
  }
  // A contestant never seen is paired first.
  std::vector<std::string> more = {"a", "b", "c", "new"};
  auto p = ChoosePair(more, history, PairSampling::kUncertain, rng);
  CHECK((p.first == 3 || p.second == 3));
}

}  // namespace lms::eval
