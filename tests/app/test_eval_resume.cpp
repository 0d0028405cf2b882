// kill -9 in the middle of `lmstation answer` and `lmstation judge`, then the same command again:
// the run continues, nothing is duplicated, nothing is lost, and the result equals an
// uninterrupted run. Uses a tiny random model written by our GGUF writer, greedy decoding.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "core/store/sqlite_db.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace lms {
namespace {

std::string WriteTinyModel(const std::string& dir) {
  test::TinySpec spec;
  spec.d_model = 64;
  spec.n_vocab = 96;
  auto bytes = test::MakeTinyModel(spec);
  std::string path = dir + "/tiny.gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

std::string WriteQuestions(const std::string& dir, int n) {
  std::string path = dir + "/questions.jsonl";
  std::ofstream f(path);
  for (int i = 1; i <= n; ++i) {
    f << "{\"question_id\": " << i << ", \"category\": \"writing\", \"turns\": [\"first question " << i << "\", \"second question " << i
      << "\"]}\n";
  }
  return path;
}

// stderr goes to this file so a failing job can be shown.
std::string g_log;

std::string ReadLog() {
  std::ifstream f(g_log);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

pid_t Spawn(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    std::string bin = LMSTATION_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (!freopen("/dev/null", "w", stdout) || !freopen(g_log.c_str(), "w", stderr)) _exit(126);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

int64_t Count(const std::string& db, const std::string& sql) {
  auto d = store::Database::Open(db);
  if (!d.ok()) return -1;
  auto t = (*d)->Query(sql);
  if (!t.ok() || t->rows.empty()) return -1;  // table not created yet
  return std::get<int64_t>(t->rows[0][0]);
}

// Starts the command, SIGKILLs it once `sql` counts at least `at_least` rows, returns the count
// seen right after the kill.
int64_t KillMidway(const std::vector<std::string>& args, const std::string& db, const std::string& sql, int64_t at_least) {
  pid_t pid = Spawn(args);
  REQUIRE(pid > 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Count(db, sql) >= at_least) break;
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) FAIL("the job finished before it could be killed: " << ReadLog());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  CHECK(WaitExit(pid) == -SIGKILL);
  return Count(db, sql);
}

std::vector<std::string> Texts(const std::string& db, const std::string& sql) {
  auto d = store::Database::Open(db);
  REQUIRE(d.ok());
  auto t = (*d)->Query(sql);
  REQUIRE(t.ok());
  std::vector<std::string> out;
  for (const auto& r : t->rows) out.push_back(store::ValueToString(r[0]) + "|" + store::ValueToString(r[1]));
  return out;
}

}  // namespace

TEST_CASE("answer and judge survive kill -9 and resume without duplicates or loss", "[eval][resume]") {
  const std::string dir = test::TempDir() + "/resume";
  std::filesystem::create_directories(dir);
  g_log = dir + "/stderr.log";
  const std::string model = WriteTinyModel(dir);
  const int kQuestions = 6;
  const std::string questions = WriteQuestions(dir, kQuestions);
  const std::string db = dir + "/killed.db", clean = dir + "/clean.db";
  auto answer = [&](const std::string& name, const std::string& path) {
    return std::vector<std::string>{"-q", "answer", "--questions", questions, "--contestant", name, "--model", model, "--temp", "0",
                                    "-n", "100", "-c", "256", "-t", "1", "--db", path};
  };
  const std::string answers_sql = "SELECT COUNT(*) FROM answers";
  const int64_t seen = KillMidway(answer("a", db), db, answers_sql, 3);
  INFO("answers recorded when killed: " << seen);
  CHECK(seen >= 3);
  CHECK(seen < 2 * kQuestions);  // the kill landed mid-run
  const std::string texts_sql = "SELECT question_id || ':' || turn, text FROM answers ORDER BY question_id, turn";
  const auto before = Texts(db, texts_sql);
  REQUIRE(WaitExit(Spawn(answer("a", db))) == 0);
  CHECK(Count(db, answers_sql) == 2 * kQuestions);
  CHECK(Count(db, "SELECT COUNT(DISTINCT contestant_id || ':' || question_id || ':' || turn) FROM answers") == 2 * kQuestions);
  CHECK(Count(db, "SELECT COUNT(*) FROM runs WHERE kind = 'answer'") == 1);  // the same run, resumed
  CHECK(Count(db, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 1);
  const auto after = Texts(db, texts_sql);
  for (const auto& row : before) CHECK(std::find(after.begin(), after.end(), row) != after.end());  // recorded answers kept as they were
  // Greedy decoding: the resumed run equals an uninterrupted one, turn 2 included (it saw the
  // recorded turn 1).
  REQUIRE(WaitExit(Spawn(answer("a", clean))) == 0);
  CHECK(Texts(clean, texts_sql) == after);

  // A second contestant, then a pairwise judge killed midway.
  REQUIRE(WaitExit(Spawn({"-q", "answer", "--questions", questions, "--contestant", "b", "--model", model, "--temp", "0.9", "--seed", "4",
                          "-n", "40", "-t", "1", "--db", db})) == 0);
  const std::vector<std::string> judge = {"-q", "judge", "--questions", questions, "--contestants", "a,b", "--judge", "j", "--model", model,
                                          "--multi-turn", "-n", "100", "-c", "256", "-t", "1", "--db", db};
  const std::string judgments_sql = "SELECT COUNT(*) FROM judgments";
  const int64_t judged = KillMidway(judge, db, judgments_sql, 3);
  const int64_t expected = kQuestions * 2 /*turns*/ * 2 /*orders*/;
  CHECK(judged < expected);
  REQUIRE(WaitExit(Spawn(judge)) == 0);
  CHECK(Count(db, judgments_sql) == expected);
  CHECK(Count(db, "SELECT COUNT(DISTINCT judge_id || ':' || prompt_name || ':' || turn || ':' || answer_a || ':' || answer_b) FROM judgments") == expected);
  // Every output is kept, parsed or not; battles exist exactly for pairs with two verdicts.
  CHECK(Count(db, "SELECT COUNT(*) FROM judgments WHERE raw_output IS NULL") == 0);
  CHECK(Count(db, "SELECT COUNT(*) FROM battles") ==
        Count(db, "SELECT COUNT(*) FROM (SELECT j1.id FROM judgments j1 JOIN judgments j2 ON j1.answer_a = j2.answer_b AND j1.answer_b = j2.answer_a "
                  "AND j1.turn = j2.turn AND j1.id < j2.id WHERE j1.parsed = 1 AND j2.parsed = 1)"));
  // Terminal arena votes: recorded as human battles; a later session adds to the same run.
  auto vote = [&](const std::string& keys, int votes) {
    const std::string cmd = std::string(LMSTATION_BIN) + " -q arena --questions " + questions + " --contestants a,b --votes " +
                            std::to_string(votes) + " --arena-seed 3 --db " + db + " > /dev/null 2>&1";
    FILE* p = popen(cmd.c_str(), "w");
    REQUIRE(p != nullptr);
    fputs(keys.c_str(), p);
    return pclose(p);
  };
  const int64_t judge_battles = Count(db, "SELECT COUNT(*) FROM battles");
  CHECK(vote("a\nmaybe\nb\nx\n", 3) == 0);  // an unknown key is asked again
  CHECK(Count(db, "SELECT COUNT(*) FROM battles WHERE source = 'human'") == 3);
  CHECK(vote("t\nq\n", 5) == 0);  // quits after one vote
  CHECK(Count(db, "SELECT COUNT(*) FROM battles WHERE source = 'human'") == 4);
  CHECK(Count(db, "SELECT COUNT(*) FROM battles WHERE source = 'human' AND winner = 'both_bad'") == 1);
  CHECK(Count(db, "SELECT COUNT(DISTINCT run_id) FROM battles WHERE source = 'human'") == 1);
  CHECK(Count(db, "SELECT COUNT(*) FROM battles") == judge_battles + 4);

  // Multi-turn battles: the voter reads both turns; a judge judges turn 2 with the multi-turn prompt.
  {
    const std::string shown = dir + "/arena_mt.txt";
    const std::string cmd = std::string(LMSTATION_BIN) + " -q arena --multi-turn --questions " + questions +
                            " --contestants a,b --votes 1 --arena-seed 5 --db " + db + " > " + shown + " 2>&1";
    FILE* p = popen(cmd.c_str(), "w");
    REQUIRE(p != nullptr);
    fputs("b\n", p);
    CHECK(pclose(p) == 0);
    std::ifstream f(shown);
    const std::string text((std::istreambuf_iterator<char>(f)), {});
    CHECK(text.find("##### turn 2") != std::string::npos);
    CHECK(text.find("second question") != std::string::npos);
    CHECK(Count(db, "SELECT COUNT(*) FROM battles WHERE source = 'human'") == 5);
    CHECK(Count(db, "SELECT COUNT(DISTINCT run_id) FROM battles WHERE source = 'human'") == 2);
    const int64_t judged_before = Count(db, "SELECT COUNT(*) FROM judgments");
    REQUIRE(WaitExit(Spawn({"-q", "arena", "--multi-turn", "--questions", questions, "--contestants", "a,b", "--votes", "2", "--arena-seed", "6",
                            "--judge", "j2", "--model", model, "-n", "20", "-c", "512", "-t", "1", "--db", db})) == 0);
    const int64_t new_judgments = Count(db, "SELECT COUNT(*) FROM judgments") - judged_before;
    CHECK(new_judgments >= 2);  // both orders; two draws may pick the same question
    CHECK(Count(db, "SELECT COUNT(*) FROM judgments j JOIN contestants c ON c.id = j.judge_id WHERE c.name = 'j2' "
                    "AND (j.turn != 2 OR j.prompt_name NOT LIKE '%multi-turn')") == 0);
  }

  // Running the finished job again changes nothing.
  REQUIRE(WaitExit(Spawn(judge)) == 0);
  CHECK(Count(db, "SELECT COUNT(*) FROM judgments j JOIN contestants c ON c.id = j.judge_id WHERE c.name = 'j'") == expected);
}

TEST_CASE("answers and judgments batched on the serving engine equal one-at-a-time ones", "[eval][parallel]") {
  const std::string dir = test::TempDir() + "/parallel";
  std::filesystem::create_directories(dir);
  g_log = dir + "/stderr.log";
  const std::string model = WriteTinyModel(dir);
  const int kQuestions = 7;
  const std::string questions = WriteQuestions(dir, kQuestions);
  const std::string texts_sql =
      "SELECT c.name || ':' || q.question_id || ':' || a.turn, a.text FROM answers a JOIN contestants c ON c.id = a.contestant_id "
      "JOIN questions q ON q.id = a.question_id ORDER BY c.name, q.question_id, a.turn";
  const std::string verdicts_sql =
      "SELECT q.question_id || ':' || j.turn || ':' || ca.name || ':' || cb.name AS k, j.raw_output FROM judgments j "
      "JOIN questions q ON q.id = j.question_id JOIN answers aa ON aa.id = j.answer_a JOIN answers ab ON ab.id = j.answer_b "
      "JOIN contestants ca ON ca.id = aa.contestant_id JOIN contestants cb ON cb.id = ab.contestant_id ORDER BY k";
  auto run_all = [&](const std::string& db, const std::string& parallel) {
    // Greedy, and sampled with a seed (each request samples with its own seeded generator).
    REQUIRE(WaitExit(Spawn({"-q", "answer", "--questions", questions, "--contestant", "a", "--model", model, "--temp", "0", "-n", "48", "-c",
                            "256", "-t", "1", "--parallel", parallel, "--db", db})) == 0);
    REQUIRE(WaitExit(Spawn({"-q", "answer", "--questions", questions, "--contestant", "b", "--model", model, "--temp", "0.9", "--seed", "4",
                            "-n", "48", "-c", "256", "-t", "1", "--parallel", parallel, "--db", db})) == 0);
    REQUIRE(WaitExit(Spawn({"-q", "judge", "--questions", questions, "--contestants", "a,b", "--judge", "j", "--model", model, "--multi-turn",
                            "-n", "40", "-c", "256", "-t", "1", "--parallel", parallel, "--db", db})) == 0);
  };
  run_all(dir + "/one.db", "1");
  run_all(dir + "/many.db", "5");
  INFO(ReadLog());
  const auto one = Texts(dir + "/one.db", texts_sql), many = Texts(dir + "/many.db", texts_sql);
  CHECK(one.size() == 2 * 2 * kQuestions);
  CHECK(many == one);
  const auto v1 = Texts(dir + "/one.db", verdicts_sql), v5 = Texts(dir + "/many.db", verdicts_sql);
  CHECK(v1.size() == kQuestions * 2 /*turns*/ * 2 /*orders*/);
  CHECK(v5 == v1);
  CHECK(Count(dir + "/many.db", "SELECT COUNT(*) FROM battles") == Count(dir + "/one.db", "SELECT COUNT(*) FROM battles"));
  // A bad flag value is refused before any work.
  CHECK(WaitExit(Spawn({"-q", "answer", "--questions", questions, "--contestant", "a", "--model", model, "--parallel", "0", "--db",
                        dir + "/bad.db"})) != 0);
}

TEST_CASE("judge --verdict logprob on a tiny model, and its judgments round-trip through FastChat files", "[eval][choice][fastchat]") {
  const std::string dir = test::TempDir() + "/forced";
  std::filesystem::create_directories(dir);
  g_log = dir + "/stderr.log";
  const std::string model = WriteTinyModel(dir);
  const int kQuestions = 3;
  const std::string questions = WriteQuestions(dir, kQuestions);
  const std::string db = dir + "/forced.db", copy = dir + "/imported.db";
  for (const std::string name : {"a", "b"}) {
    REQUIRE(WaitExit(Spawn({"-q", "answer", "--questions", questions, "--contestant", name, "--model", model, "--temp", name == "a" ? "0" : "1",
                            "-n", "12", "-t", "1", "--db", db, "--export", dir + "/" + name + ".jsonl"})) == 0);
  }
  std::vector<std::string> judge = {"-q", "judge", "--questions", questions, "--contestants", "a,b", "--judge", "lp", "--model", model,
                                    "--verdict", "logprob", "-c", "512", "-t", "1", "--db", db};
  REQUIRE(WaitExit(Spawn(judge)) == 0);
  INFO(ReadLog());
  CHECK(Count(db, "SELECT COUNT(*) FROM judgments WHERE method = 'logprob' AND parsed = 1 AND probabilities IS NOT NULL") == 2 * kQuestions);
  CHECK(Count(db, "SELECT COUNT(*) FROM judgments WHERE raw_output NOT IN ('[[A]]', '[[B]]', '[[C]]')") == 0);
  CHECK(Count(db, "SELECT COUNT(*) FROM judgments WHERE json_extract(probabilities, '$.A') + json_extract(probabilities, '$.B') + "
                  "json_extract(probabilities, '$.C') BETWEEN 0 AND 1.000001") == 2 * kQuestions);
  CHECK(Count(db, "SELECT COUNT(*) FROM battles") == kQuestions);  // forced choice always gives a verdict
  // One judge name, one verdict method.
  judge[judge.size() - 7] = "text";
  REQUIRE(judge[judge.size() - 8] == "--verdict");
  CHECK(WaitExit(Spawn(judge)) != 0);
  CHECK(ReadLog().find("another definition") != std::string::npos);

  // Export as FastChat's pair file, import into a fresh record with the exported answers.
  REQUIRE(WaitExit(Spawn({"-q", "db", "--db", db, "export-judgments", "--judge", "lp", "-o", dir + "/lp_pair.jsonl"})) == 0);
  REQUIRE(WaitExit(Spawn({"-q", "db", "--db", copy, "import-judgments", dir + "/lp_pair.jsonl", "--questions", questions, "--answers",
                          "a=" + dir + "/a.jsonl", "--answers", "b=" + dir + "/b.jsonl"})) == 0);
  const std::string winners = "SELECT q.question_id, b.winner FROM battles b JOIN questions q ON q.id = b.question_id ORDER BY q.question_id";
  CHECK(Texts(copy, winners) == Texts(db, winners));
  CHECK(Texts(copy, "SELECT raw_output, verdict FROM judgments ORDER BY id") == Texts(db, "SELECT raw_output, verdict FROM judgments ORDER BY id"));
}

}  // namespace lms
