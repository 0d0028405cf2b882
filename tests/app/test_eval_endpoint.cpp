// An endpoint contestant: `lmstation answer --endpoint` speaks the OpenAI chat completions
// protocol to a local HTTP server (cpp-httplib, loopback only) that records each request.
#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "core/store/sqlite_db.h"
#include "tests/test_support.h"

namespace lms {

TEST_CASE("answer --endpoint sends OpenAI chat requests with the key and the conversation so far", "[eval][endpoint]") {
  httplib::Server server;
  std::mutex mu;
  std::vector<nlohmann::json> requests;
  std::vector<std::string> auth;
  server.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(nlohmann::json::parse(req.body));
    auth.push_back(req.get_header_value("Authorization"));
    // The judge model always prefers the first answer shown: a pure position bias.
    const std::string reply = requests.back()["model"] == "judge-m" ? "A looks better. [[A]]" : "reply " + std::to_string(requests.size());
    nlohmann::json out = {{"id", "x"}, {"object", "chat.completion"},
                          {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", reply}}}, {"finish_reason", "stop"}}}},
                          {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 2}, {"total_tokens", 7}}}};
    res.set_content(out.dump(), "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread t([&] { server.listen_after_bind(); });
  const std::string dir = test::TempDir();
  const std::string questions = dir + "/q.jsonl", db = dir + "/e.db";
  std::ofstream(questions) << "{\"question_id\": 1, \"category\": \"writing\", \"turns\": [\"hello?\", \"and then?\"]}\n";
  const std::string cmd = "LMS_TEST_KEY=sekret " + std::string(LMSTATION_BIN) + " -q answer --questions " + questions +
                          " --contestant remote --endpoint http://127.0.0.1:" + std::to_string(port) +
                          "/v1 --endpoint-model m1 --api-key-env LMS_TEST_KEY --temp 0.5 -n 32 --system be-brief --db " + db + " > /dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  const int rc_missing_key = std::system((std::string(LMSTATION_BIN) + " -q answer --questions " + questions +
                                          " --contestant r2 --endpoint http://127.0.0.1:1/v1 --endpoint-model m --api-key-env LMS_NO_SUCH_VAR --db " + db +
                                          " > /dev/null 2>&1").c_str());
  const std::string second = "LMS_TEST_KEY=sekret " + std::string(LMSTATION_BIN) + " -q answer --questions " + questions +
                             " --contestant remote2 --endpoint http://127.0.0.1:" + std::to_string(port) +
                             "/v1 --endpoint-model m2 --db " + db + " > /dev/null 2>&1";
  const int rc2 = std::system(second.c_str());
  const std::string judge = std::string(LMSTATION_BIN) + " -q judge --questions " + questions + " --contestants remote,remote2 --judge j" +
                            " --endpoint http://127.0.0.1:" + std::to_string(port) + "/v1 --endpoint-model judge-m --multi-turn --db " + db +
                            " > " + dir + "/judge.out 2>&1";
  const int rc_judge = std::system(judge.c_str());
  server.stop();
  t.join();
  CHECK(rc2 == 0);
  CHECK(rc_judge == 0);
  {
    std::ifstream f(dir + "/judge.out");
    std::string out((std::istreambuf_iterator<char>(f)), {});
    CHECK(out.find("0 of 2 pairs judged in both orders") != std::string::npos);  // never consistent
  }
  {
    auto d = store::Database::Open(db);
    REQUIRE(d.ok());
    auto b = (*d)->Query("SELECT winner, source, voter FROM battles");
    REQUIRE(b.ok());
    REQUIRE(b->rows.size() == 2);  // turn 1 and turn 2
    for (const auto& r : b->rows) CHECK(store::ValueToString(r[0]) == "tie");  // inconsistent orders count as ties
    auto j = (*d)->Query("SELECT COUNT(*) FROM judgments WHERE parsed = 1 AND verdict = 'A'");
    CHECK(store::ValueToString(j->rows[0][0]) == "4");
  }
  CHECK(rc == 0);
  CHECK(rc_missing_key != 0);
  REQUIRE(requests.size() == 2 + 2 + 4);
  CHECK(auth[0] == "Bearer sekret");
  CHECK(requests[0]["model"] == "m1");
  CHECK(requests[0]["max_tokens"] == 32);
  CHECK(requests[0]["temperature"] == 0.5);
  CHECK(requests[0]["messages"].size() == 2);  // system, user
  CHECK(requests[0]["messages"][0]["role"] == "system");
  // Turn 2 carries turn 1's question and answer.
  REQUIRE(requests[1]["messages"].size() == 4);
  CHECK(requests[1]["messages"][2]["role"] == "assistant");
  CHECK(requests[1]["messages"][2]["content"] == "reply 1");
  CHECK(requests[1]["messages"][3]["content"] == "and then?");
  auto d = store::Database::Open(db);
  REQUIRE(d.ok());
  auto rows = (*d)->Query("SELECT a.text, a.tokens, c.kind, c.config FROM answers a JOIN contestants c ON c.id = a.contestant_id WHERE c.name = 'remote' ORDER BY a.turn");
  REQUIRE(rows.ok());
  REQUIRE(rows->rows.size() == 2);
  CHECK(store::ValueToString(rows->rows[1][0]) == "reply 2");
  CHECK(store::ValueToString(rows->rows[0][1]) == "2");
  CHECK(store::ValueToString(rows->rows[0][2]) == "endpoint");
  CHECK(store::ValueToString(rows->rows[0][3]).find("sekret") == std::string::npos);  // the key is never recorded
}

}  // namespace lms
