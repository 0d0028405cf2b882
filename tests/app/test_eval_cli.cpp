// lmstation leaderboard / agreement / db as a user runs them, on the shared rating fixtures and
// llmfao votes.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <map>
#include <string>

#include "tests/test_support.h"

namespace lms {
namespace {

struct Output {
  int exit_code;
  std::string out;
};

Output Lmstation(const std::string& args) {
  FILE* p = popen((std::string(LMSTATION_BIN) + " -q " + args + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace

TEST_CASE("leaderboard --json gives the issue's fields, golden BT order and intervals", "[eval][cli]") {
  auto dir = test::SharedDataDir();
  if (!dir) LMS_SKIP("shared data (eval/rating_fixtures) not present");
  const std::string food = *dir + "/eval/rating_fixtures/food.csv";
  auto r = Lmstation("leaderboard --battles " + food + " --json --bootstrap 200 --seed 5");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  REQUIRE(j.size() == 5);
  // evalica's Bradley-Terry order for food.csv: Tacos, Sushi, Burger, Pasta, Pizza.
  std::vector<std::string> order;
  for (const auto& row : j) {
    for (const char* k : {"model", "battles", "elo", "bt", "bt_low", "bt_high", "rank"}) CHECK(row.contains(k));
    CHECK(row["bt_low"].get<double>() <= row["bt"].get<double>());
    CHECK(row["bt"].get<double>() <= row["bt_high"].get<double>());
    order.push_back(row["model"]);
  }
  CHECK(order == std::vector<std::string>{"Tacos", "Sushi", "Burger", "Pasta", "Pizza"});
  CHECK(std::abs(j[0]["elo"].get<double>() - 1013.3587771887543) < 1e-9);  // evalica's golden Elo
  // Anchoring shifts the scale: the anchor gets exactly its rating.
  auto a = Lmstation("leaderboard --battles " + food + " --json --bootstrap 0 --anchor Pizza=800");
  REQUIRE(a.exit_code == 0);
  auto ja = nlohmann::json::parse(a.out);
  CHECK(ja[4]["model"] == "Pizza");
  CHECK(std::abs(ja[4]["bt"].get<double>() - 800.0) < 1e-9);
  CHECK(std::abs((ja[0]["bt"].get<double>() - ja[4]["bt"].get<double>()) - (j[0]["bt"].get<double>() - j[4]["bt"].get<double>())) < 1e-9);

  auto bad = Lmstation("leaderboard --battles " + food + " --anchor Nobody=1000");
  CHECK(bad.exit_code != 0);
  CHECK(bad.out.find("Nobody") != std::string::npos);
  auto missing = Lmstation("leaderboard --battles no-such-file.csv");
  CHECK(missing.exit_code != 0);
  CHECK(missing.out.find("no-such-file.csv") != std::string::npos);
}

TEST_CASE("leaderboard and agreement run directly on the llmfao votes", "[eval][cli]") {
  auto dir = test::SharedDataDir();
  if (!dir) LMS_SKIP("shared data (eval/llmfao) not present");
  const std::string d = *dir + "/eval/llmfao/";
  auto r = Lmstation("leaderboard --battles " + d + "crowd-comparisons.csv --json --bootstrap 100");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j.size() > 50);
  int64_t battles = 0;
  for (const auto& row : j) battles += row["battles"].get<int64_t>();
  CHECK(battles == 2 * 8931);
  auto ag = Lmstation("agreement --human " + d + "crowd-comparisons.csv --judge " + d + "gpt4-crowd-comparisons.csv --json");
  REQUIRE(ag.exit_code == 0);
  auto aj = nlohmann::json::parse(ag.out);
  CHECK(aj["judges"][0]["judge_human"]["with_ties"]["total"] == 8931);
  CHECK(aj["human_human"]["shared_items"].get<int>() > 2000);
}

TEST_CASE("leaderboard --save records battles once and db exports them", "[eval][cli][store]") {
  auto dir = test::SharedDataDir();
  if (!dir) LMS_SKIP("shared data (eval/rating_fixtures) not present");
  const std::string food = *dir + "/eval/rating_fixtures/food.csv";
  const std::string db = test::TempDir() + "/lb.db";
  for (int i = 0; i < 2; ++i) REQUIRE(Lmstation("leaderboard --battles " + food + " --save --db " + db + " --bootstrap 20").exit_code == 0);
  auto battles = Lmstation("db --db " + db + " export battles --format json");
  REQUIRE(battles.exit_code == 0);
  CHECK(nlohmann::json::parse(battles.out).size() == 30);  // imported once
  auto ratings = Lmstation("db --db " + db + " export ratings --format json");
  CHECK(nlohmann::json::parse(ratings.out).size() == 2);   // two snapshots
  auto links = Lmstation("db --db " + db + " export rating_battles");
  CHECK(std::count(links.out.begin(), links.out.end(), '\n') == 61);  // header + 2 x 30
  auto runs = Lmstation("db --db " + db + " runs --json");
  REQUIRE(runs.exit_code == 0);
  CHECK(nlohmann::json::parse(runs.out)[0]["kind"] == "import");
  auto from_db = Lmstation("leaderboard --from-db --db " + db + " --json --bootstrap 0");
  REQUIRE(from_db.exit_code == 0);
  CHECK(nlohmann::json::parse(from_db.out)[0]["model"] == "Tacos");
  auto bad = Lmstation("db --db " + db + " export sqlite_master");
  CHECK(bad.exit_code != 0);
}

}  // namespace lms
