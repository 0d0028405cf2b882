// Ratings checked against evalica's golden values and the Wikipedia Bradley–Terry example
// (rating fixtures in the shared data), plus properties of bootstrap and ranks.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <numeric>

#include "core/eval/battles.h"
#include "core/eval/rating.h"
#include "tests/test_support.h"

namespace lms::eval {
namespace {

std::optional<std::string> FixtureDir() {
  auto d = test::SharedDataDir();
  if (!d) return std::nullopt;
  return *d + "/eval/rating_fixtures";
}

// algorithm -> item -> score from evalica's *-golden.csv.
std::map<std::string, std::map<std::string, double>> LoadGolden(const std::string& path) {
  std::map<std::string, std::map<std::string, double>> g;
  auto text = ReadWholeFile(path);
  REQUIRE(text.ok());
  size_t pos = 0;
  std::vector<std::string> f;
  NextCsvRecord(*text, pos, f);  // header
  while (NextCsvRecord(*text, pos, f)) g[f[0]][f[1]] = std::stod(f[2]);
  return g;
}

}  // namespace

TEST_CASE("Elo and Bradley-Terry match evalica's golden values", "[eval][rating]") {
  auto dir = FixtureDir();
  if (!dir) LMS_SKIP("shared data (eval/rating_fixtures) not present");
  for (const char* name : {"food", "simple"}) {
    INFO(name);
    auto set = LoadBattlesFile(*dir + "/" + name + ".csv");
    REQUIRE(set.ok());
    auto golden = LoadGolden(*dir + "/" + name + "-golden.csv");
    REQUIRE(golden["elo"].size() == static_cast<size_t>(set->num_models()));

    std::vector<double> elo = OnlineElo(*set);
    for (const auto& [item, want] : golden["elo"]) {
      INFO("elo " << item);
      CHECK(std::abs(elo[*set->Find(item)] - want) < 1e-9);
    }
    BtFit fit = FitBradleyTerry(CountWins(*set));
    CHECK(fit.converged);
    CHECK(fit.well_posed);
    // evalica reports strengths normalised to sum 1.
    const double sum = std::accumulate(fit.strengths.begin(), fit.strengths.end(), 0.0);
    for (const auto& [item, want] : golden["bradley_terry"]) {
      INFO("bt " << item);
      CHECK(std::abs(fit.strengths[*set->Find(item)] / sum - want) < 1e-9);
    }
  }
}

TEST_CASE("Bradley-Terry reproduces the Wikipedia worked example", "[eval][rating]") {
  auto dir = FixtureDir();
  if (!dir) LMS_SKIP("shared data (eval/rating_fixtures) not present");
  auto text = ReadWholeFile(*dir + "/bt_wikipedia_example.csv");
  REQUIRE(text.ok());
  BattleSet set;
  size_t pos = 0;
  std::vector<std::string> f;
  NextCsvRecord(*text, pos, f);
  while (NextCsvRecord(*text, pos, f)) {
    for (int k = 0; k < std::stoi(f[2]); ++k) set.Add(set.Intern(f[0]), set.Intern(f[1]), Winner::kLeft);
  }
  auto expected = ReadWholeFile(*dir + "/bt_wikipedia_example_expected.csv");
  REQUIRE(expected.ok());
  BtFit fit = FitBradleyTerry(CountWins(set));
  REQUIRE(fit.converged);
  pos = 0;
  NextCsvRecord(*expected, pos, f);
  int checked = 0;
  while (NextCsvRecord(*expected, pos, f)) {
    INFO(f[0]);
    // The article prints three decimals.
    CHECK(std::abs(fit.strengths[*set.Find(f[0])] - std::stod(f[1])) < 5e-4 + 1e-12);
    ++checked;
  }
  CHECK(checked == 4);
  // On the Elo scale, geometric mean 1 is 1000 on average.
  std::vector<double> r = ToEloScale(fit.strengths);
  CHECK(std::abs(std::accumulate(r.begin(), r.end(), 0.0) / 4 - 1000.0) < 1e-9);
  // An anchor shifts every rating by the same amount.
  std::vector<double> a = ToEloScale(fit.strengths, Anchor{*set.Find("D"), 1200.0});
  CHECK(std::abs(a[*set.Find("D")] - 1200.0) < 1e-9);
  CHECK(std::abs((a[0] - a[1]) - (r[0] - r[1])) < 1e-9);
}

TEST_CASE("Bradley-Terry maximises the likelihood: the gradient vanishes", "[eval][rating]") {
  // A random tournament with ties; at the MLE, each model's expected wins equal its wins.
  BattleSet set;
  for (int i = 0; i < 6; ++i) set.Intern(fmt::format("m{}", i));
  Rng rng(7);
  for (int k = 0; k < 500; ++k) {
    int a = static_cast<int>(rng.Below(6)), b = static_cast<int>(rng.Below(5));
    if (b >= a) ++b;
    uint64_t u = rng.Below(10);
    set.Add(a, b, u < static_cast<uint64_t>(a + 2) ? Winner::kLeft : (u < 8 ? Winner::kRight : Winner::kTie));
  }
  WinMatrix m = CountWins(set);
  BtFit fit = FitBradleyTerry(m);
  REQUIRE(fit.converged);
  for (int i = 0; i < 6; ++i) {
    double wins = 0, expected = 0;
    for (int j = 0; j < 6; ++j) {
      if (j == i) continue;
      const double nij = m.wins[i * 6 + j] + m.wins[j * 6 + i];
      wins += m.wins[i * 6 + j];
      expected += nij * fit.strengths[i] / (fit.strengths[i] + fit.strengths[j]);
    }
    CHECK(std::abs(wins - expected) < 1e-8);
  }
}

TEST_CASE("An undefeated model makes the MLE ill-posed, reported not hidden", "[eval][rating]") {
  BattleSet set;
  int a = set.Intern("a"), b = set.Intern("b"), c = set.Intern("c");
  set.Add(a, b, Winner::kLeft);
  set.Add(a, c, Winner::kLeft);
  set.Add(b, c, Winner::kTie);
  BtOptions o;
  o.max_iterations = 2000;
  BtFit fit = FitBradleyTerry(CountWins(set), o);
  CHECK_FALSE(fit.well_posed);
  for (double p : fit.strengths) CHECK(std::isfinite(p));
  CHECK(fit.strengths[a] > fit.strengths[b]);
}

TEST_CASE("Bootstrap intervals are seeded, cover the estimate and rank by overlap", "[eval][rating]") {
  BattleSet set;
  for (int i = 0; i < 5; ++i) set.Intern(fmt::format("m{}", i));
  Rng rng(3);
  for (int k = 0; k < 3000; ++k) {
    int a = static_cast<int>(rng.Below(5)), b = static_cast<int>(rng.Below(4));
    if (b >= a) ++b;
    // Model i beats j with probability rising in i - j.
    const double p = 1.0 / (1.0 + std::pow(10.0, (b - a) * 0.3));
    const double u = static_cast<double>(rng.Below(1000000)) / 1e6;
    set.Add(a, b, u < p * 0.9 ? Winner::kLeft : (u < 0.9 ? Winner::kRight : Winner::kTie));
  }
  LeaderboardOptions o;
  o.bootstrap.rounds = 200;
  o.bootstrap.seed = 42;
  o.bootstrap.threads = 2;
  auto lb = ComputeLeaderboard(set, o);
  REQUIRE(lb.ok());
  o.bootstrap.threads = 1;
  auto again = ComputeLeaderboard(set, o);
  REQUIRE(again.ok());
  o.bootstrap.seed = 43;
  auto other = ComputeLeaderboard(set, o);
  REQUIRE(other.ok());
  bool differs = false;
  for (size_t i = 0; i < lb->rows.size(); ++i) {
    const auto& r = lb->rows[i];
    CHECK(r.bt_low <= r.bt);
    CHECK(r.bt <= r.bt_high);
    CHECK(r.bt_low == again->rows[i].bt_low);  // same seed, any thread count: same numbers
    CHECK(r.bt_high == again->rows[i].bt_high);
    differs |= r.bt_low != other->rows[i].bt_low;
  }
  CHECK(differs);
  CHECK(lb->rows.front().model == "m4");
  CHECK(lb->rows.front().rank == 1);
  CHECK(lb->rows.back().model == "m0");
  CHECK(lb->rows.back().rank > 1);

  std::vector<int> ranks = RankByIntervals({{10, 20}, {15, 25}, {30, 40}, {0, 5}});
  CHECK(ranks == std::vector<int>{2, 2, 1, 4});
}

TEST_CASE("Battles round-trip through CSV and FastChat JSON; bad input is named", "[eval][rating]") {
  auto set = ParseBattlesCsv("id,left,right,winner,prompt\n1,\"A, Inc\",B,left,7\n2,B,C,tie,8\n3,C,A,both_bad,9\n4,A,C,right,9\n");
  REQUIRE(set.ok());
  REQUIRE(set->size() == 4);
  CHECK(set->models()[0] == "A, Inc");
  CHECK(set->battles()[0].question == "7");
  for (const std::string& text : {BattlesToCsv(*set), BattlesToJson(*set)}) {
    auto back = text[0] == '[' ? ParseBattlesJson(text) : ParseBattlesCsv(text);
    REQUIRE(back.ok());
    REQUIRE(back->size() == 4);
    for (size_t i = 0; i < 4; ++i) {
      CHECK(back->models()[back->battles()[i].left] == set->models()[set->battles()[i].left]);
      CHECK(back->battles()[i].winner == set->battles()[i].winner);
      CHECK(back->battles()[i].question == set->battles()[i].question);
    }
  }
  auto jl = ParseBattlesJson("{\"model_a\":\"x\",\"model_b\":\"y\",\"winner\":\"tie (bothbad)\",\"question_id\":81,\"judge\":[\"gpt-4\",\"pair-v2\"]}\n");
  REQUIRE(jl.ok());
  CHECK(jl->battles()[0].winner == Winner::kBothBad);
  CHECK(jl->battles()[0].question == "81");
  CHECK(jl->battles()[0].voter == "gpt-4/pair-v2");

  auto bad = ParseBattlesCsv("left,right,winner\nA,B,maybe\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("maybe") != std::string::npos);
  CHECK_FALSE(ParseBattlesCsv("a,b,c\n1,2,3\n").ok());
  CHECK_FALSE(ParseBattlesCsv("left,right,winner\nA,A,left\n").ok());
  CHECK_FALSE(ParseBattlesJson("[{\"model_a\":\"x\"}]").ok());
  CHECK_FALSE(ParseBattlesJson("[{").ok());
  CHECK_FALSE(LoadBattlesFile("no/such/file.csv").ok());
  LeaderboardOptions o;
  o.anchor_model = "nobody";
  CHECK_FALSE(ComputeLeaderboard(*set, o).ok());
}

}  // namespace lms::eval
