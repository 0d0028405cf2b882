// lmstation --batch: job files are read strictly, steps are checked by the real parser before
// anything runs, and a run as a user starts it records every step, names the failing one and
// stops a serve step on time.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "app/batch_job.h"
#include "app/batch_runner.h"
#include "core/store/store.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace lms {
namespace {

namespace fs = std::filesystem;
using app::BatchPaths;
using app::LoadBatchJob;

std::string WriteFile(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

BatchPaths Paths(const std::string& cwd) { return BatchPaths{cwd, "/opt/assets"}; }

std::string ErrorOf(const std::string& toml) {
  const std::string dir = test::TempDir();
  auto job = LoadBatchJob(WriteFile(dir, "job.toml", toml), Paths(dir));
  REQUIRE_FALSE(job.ok());
  return job.status().message();
}

test::ShellResult Lmstation(const std::string& args, const std::string& cwd) {
  return test::RunShell("cd '" + cwd + "' && " + std::string(LMSTATION_BIN) + " " + args + " 2>stderr.txt");
}

std::string TinyModelFile(const std::string& dir) {
  test::TinySpec spec;
  spec.n_vocab = 96;  // every printable ASCII byte has a token
  const std::vector<uint8_t> bytes = test::MakeTinyModel(spec);
  const std::string path = dir + "/tiny.gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

TEST_CASE("Batch job files become command lines", "[batch]") {
  const std::string dir = test::TempDir();
  const std::string path = WriteFile(dir, "loop.toml", R"(
name = "demo"
workdir = "out"
db = "${workdir}/rec.db"

[[step]]
run = "quantize"
args = ["${jobdir}/in.gguf", "${workdir}/q8.gguf", "Q8_0"]

[[step]]
name = "first answers"
run = "answer"
questions = "${assets}/eval/questions.jsonl"
n = 32
temp = 1.5
json = true
quiet-flag = false
stop = ["a", "b"]
cost = "$$5"
)");
  auto job = LoadBatchJob(path, Paths(dir));
  REQUIRE(job.ok());
  CHECK(job->name == "demo");
  CHECK(job->workdir == dir + "/out");
  CHECK(job->db == dir + "/out/rec.db");
  REQUIRE(job->steps.size() == 2);
  CHECK(job->steps[0].index == 1);
  CHECK(job->steps[0].name == "quantize");
  CHECK(job->steps[0].args == std::vector<std::string>{dir + "/in.gguf", dir + "/out/q8.gguf", "Q8_0"});
  const app::BatchStep& s = job->steps[1];
  CHECK(s.name == "first answers");
  CHECK(s.command == "answer");
  // Keys in table order; a one-letter key is a short option; false adds nothing.
  CHECK(s.args == std::vector<std::string>{"--cost", "$5", "--json", "-n", "32", "--questions",
                                           "/opt/assets/eval/questions.jsonl", "--stop", "a", "--stop", "b",
                                           "--temp", "1.5"});

  // Defaults: the name from the file, workdir lmstation-<name> under the current directory.
  auto plain = LoadBatchJob(WriteFile(dir, "plain.toml", "[[step]]\nrun = \"info\"\nargs = [\"m.gguf\"]\n"), Paths(dir));
  REQUIRE(plain.ok());
  CHECK(plain->name == "plain");
  CHECK(plain->workdir == dir + "/lmstation-plain");
  CHECK(plain->db.empty());
}

TEST_CASE("Bad job files are refused with the step and key named", "[batch]") {
  CHECK_THAT(ErrorOf("name = \"x\"\n"), Catch::Contains("no steps"));
  CHECK_THAT(ErrorOf("colour = 1\n[[step]]\nrun = \"info\"\n"), Catch::Contains("unknown key 'colour'"));
  CHECK_THAT(ErrorOf("[[step]]\nargs = [\"m\"]\n"), Catch::Contains("step 1") && Catch::Contains("missing 'run'"));
  CHECK_THAT(ErrorOf("[[step]]\nrun = \"info\"\n[[step]]\nrun = \"serve\"\nargs = [\"m\"]\n"),
             Catch::Contains("step 2 (serve)") && Catch::Contains("needs 'seconds'"));
  CHECK_THAT(ErrorOf("[[step]]\nrun = \"info\"\nseconds = 3\n"), Catch::Contains("serve steps only"));
  CHECK_THAT(ErrorOf("[[step]]\nrun = \"info\"\nargs = [\"${home}\"]\n"), Catch::Contains("unknown variable ${home}"));
  CHECK_THAT(ErrorOf("[[step]]\nrun = \"info\"\nopt = { a = 1 }\n"), Catch::Contains("'opt' is a table"));
  CHECK_THAT(ErrorOf("[[step]]\nrun = \"info\"\nargs = \"m\"\n"), Catch::Contains("'args' must be an array"));
  CHECK_THAT(ErrorOf("step = 3\n"), Catch::Contains("[[step]]"));
  CHECK_THAT(ErrorOf("[[step]]\nrun = \"info\"\n\"--x\" = 1\n"), Catch::Contains("without dashes"));
  CHECK_THAT(ErrorOf("workdir = \"${workdir}/a\"\n[[step]]\nrun = \"info\"\n"), Catch::Contains("cannot use ${workdir}"));
  CHECK_THAT(ErrorOf("[[step]\nrun = \"info\"\n"), Catch::Contains("line 1"));
  const std::string dir = test::TempDir();
  auto missing = LoadBatchJob(dir + "/nope.toml", Paths(dir));
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("cannot read job file"));
}

TEST_CASE("Steps are checked by the real parser before anything runs", "[batch]") {
  const std::string dir = test::TempDir();
  auto check = [&](const std::string& toml) {
    auto job = LoadBatchJob(WriteFile(dir, "job.toml", toml), Paths(dir));
    REQUIRE(job.ok());
    app::BatchRunner runner(std::move(*job), app::BatchOptions{});
    return runner.Validate();
  };
  CHECK(check("[[step]]\nrun = \"info\"\nargs = [\"m.gguf\"]\n").ok());
  // An input that an earlier step will make does not exist yet: that is not an error now.
  CHECK(check("[[step]]\nrun = \"train\"\nargs = [\"later.toml\"]\nsteps = 3\n").ok());
  Status unknown_cmd = check("[[step]]\nrun = \"info\"\nargs = [\"m\"]\n[[step]]\nrun = \"trian\"\n");
  CHECK_THAT(unknown_cmd.message(), Catch::Contains("step 2 (trian)") && Catch::Contains("unknown subcommand 'trian'"));
  Status unknown_opt = check("[[step]]\nrun = \"run\"\nargs = [\"m\"]\np = \"hi\"\ncolour = 3\n");
  CHECK_THAT(unknown_opt.message(), Catch::Contains("step 1 (run)") && Catch::Contains("colour"));
  Status missing_opt = check("[[step]]\nrun = \"run\"\nargs = [\"m\"]\n");
  CHECK_THAT(missing_opt.message(), Catch::Contains("--prompt is required"));
  CHECK_THAT(check("[[step]]\nrun = \"chat\"\nargs = [\"m\"]\n").message(), Catch::Contains("interactive"));
  CHECK_THAT(check("[[step]]\nrun = \"info\"\nargs = [\"m\"]\nhelp = true\n").message(), Catch::Contains("--help"));
}

TEST_CASE("lmstation --batch runs the steps, records them, and names the failing one", "[batch][cli]") {
  const std::string dir = test::TempDir();
  const std::string model = TinyModelFile(dir);
  WriteFile(dir, "ok.toml", R"(
name = "ok"
db = "${workdir}/rec.db"
[[step]]
name = "make-q8"
run = "quantize"
args = [")" + model + R"(", "${workdir}/tiny-q8.gguf", "Q8_0"]
[[step]]
name = "generate"
run = "run"
args = ["${workdir}/tiny-q8.gguf"]
p = "abc"
n = 4
temp = 0
ignore-eos = true
json = true
[[step]]
run = "serve"
args = ["${workdir}/tiny-q8.gguf"]
port = 0
seconds = 1
)");
  auto ok = Lmstation("--batch ok.toml", dir);
  INFO(ok.out);
  REQUIRE(ok.exit_code == 0);
  auto summary = nlohmann::json::parse(ok.out);
  CHECK(summary["status"] == "done");
  CHECK(summary["failed_step"].is_null());
  REQUIRE(summary["steps"].size() == 3);
  CHECK(summary["steps"][0]["status"] == "done");
  CHECK(fs::exists(dir + "/lmstation-ok/tiny-q8.gguf"));
  // The step that printed JSON has it inline.
  CHECK(summary["steps"][1]["output"]["tokens"].size() == 4);
  // The serve step was stopped after its second and counts as done.
  CHECK(summary["steps"][2]["status"] == "done");
  CHECK(summary["steps"][2]["seconds"].get<double>() < 30.0);
  {
    auto st = store::Store::Open(dir + "/lmstation-ok/rec.db");
    REQUIRE(st.ok());
    auto runs = (*st)->ListRuns();
    REQUIRE(runs.ok());
    REQUIRE(runs->size() == 1);
    CHECK((*runs)[0].kind == "batch");
    CHECK((*runs)[0].name == "ok");
    CHECK((*runs)[0].status == "done");
    CHECK_THAT((*runs)[0].config, Catch::Contains("make-q8"));
  }

  WriteFile(dir, "bad.toml", R"(
name = "bad"
db = "${workdir}/rec.db"
[[step]]
run = "info"
args = [")" + model + R"("]
[[step]]
name = "missing-model"
run = "run"
args = ["${workdir}/no-such.gguf"]
p = "x"
[[step]]
run = "info"
args = [")" + model + R"("]
)");
  auto bad = Lmstation("--batch bad.toml", dir);
  REQUIRE(bad.exit_code == 1);
  auto s2 = nlohmann::json::parse(bad.out);
  CHECK(s2["status"] == "failed");
  CHECK(s2["failed_step"]["index"] == 2);
  CHECK(s2["failed_step"]["name"] == "missing-model");
  CHECK(s2["steps"][1]["status"] == "failed");
  CHECK(s2["steps"][2]["status"] == "skipped");
  std::ifstream err(dir + "/stderr.txt");
  const std::string err_text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  CHECK_THAT(err_text, Catch::Contains("step 2 (missing-model) failed"));
  auto st = store::Store::Open(dir + "/lmstation-bad/rec.db");
  REQUIRE(st.ok());
  auto runs = (*st)->ListRuns();
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  CHECK((*runs)[0].status == "failed");

  // A bad job file runs nothing and exits 2.
  WriteFile(dir, "typo.toml", "[[step]]\nrun = \"info\"\nargs = [\"" + model + "\"]\n[[step]]\nrun = \"run\"\nargs = [\"m\"]\np = \"x\"\nbogus = 1\n");
  auto typo = Lmstation("--batch typo.toml", dir);
  CHECK(typo.exit_code == 2);
  CHECK_FALSE(fs::exists(dir + "/lmstation-typo"));
}

}  // namespace
}  // namespace lms

namespace lms {

// The shipped loop job with the real model: pull, fine-tune, answer with both models, judge,
// leaderboard. About two minutes on two cores.
TEST_CASE("the shipped loop job runs the whole loop on SmolLM2", "[batch][loop]") {
  if (!test::DefaultModelPath()) LMS_SKIP("SmolLM2 has not been pulled (lmstation pull smollm2)");
  const std::string dir = test::TempDir() + "/loop";
  fs::create_directories(dir);
  auto r = Lmstation("--batch " + std::string(LMS_SOURCE_DIR) + "/assets/examples/loop_smollm2.toml", dir);
  std::ifstream err(dir + "/stderr.txt");
  INFO(std::string((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>()));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  auto summary = nlohmann::json::parse(r.out);
  CHECK(summary["status"] == "done");
  for (const auto& step : summary["steps"]) CHECK(step["status"] == "done");
  // The fine-tune ran and reported a finite loss; its exported model was answered with.
  const auto& steps = summary["steps"];
  auto step = [&](const std::string& name) -> const nlohmann::json& {
    for (const auto& s : steps)
      if (s["name"] == name) return s;
    FAIL("no step " << name);
    return steps[0];
  };
  CHECK(std::isfinite(step("finetune")["output"]["loss"].get<double>()));
  CHECK(fs::exists(dir + "/lmstation-loop/ft/model.gguf"));
  // Leaderboard: both contestants rated from the judge's battles, with intervals.
  const auto& board = step("leaderboard")["output"];
  REQUIRE(board.is_array());
  REQUIRE(board.size() == 2);
  for (const auto& m : board) {
    CHECK(m["battles"].get<int>() > 0);
    CHECK(m["bt_low"].get<double>() <= m["bt"].get<double>());
    CHECK(m["bt"].get<double>() <= m["bt_high"].get<double>());
  }
  // The record: every question answered (both turns) by both models, every pair judged in
  // both orders.
  auto st = store::Store::Open(dir + "/lmstation-loop/loop.db");
  REQUIRE(st.ok());
  auto count = [&](const std::string& sql) {
    auto t = (*st)->db().Query(sql);
    REQUIRE(t.ok());
    return std::get<int64_t>(t->rows[0][0]);
  };
  const int64_t questions = count("SELECT COUNT(*) FROM questions");
  CHECK(questions == 10);
  CHECK(count("SELECT COUNT(*) FROM answers") == count("SELECT COUNT(*) FROM questions q, json_each(q.turns)") * 2);
  CHECK(count("SELECT COUNT(*) FROM judgments") == 2 * questions);
  CHECK(count("SELECT COUNT(*) FROM battles") == questions);
  CHECK(count("SELECT COUNT(*) FROM runs WHERE status != 'done'") == 0);
}

}  // namespace lms
