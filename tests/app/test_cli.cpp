// The lmstation command as a user runs it, on a tiny random model written by our GGUF writer.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/model/gguf.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace lms {
namespace {

using CommandResult = test::ShellResult;  // out: stdout and stderr together when merge_stderr

CommandResult RunLmstation(const std::string& args, bool merge_stderr = false) {
  auto r = test::RunShell(std::string(LMSTATION_BIN) + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null"));
  REQUIRE(r.exit_code >= 0);
  return r;
}

std::string TinyModelFile(TensorType type = TensorType::kF32) {
  test::TinySpec spec;
  spec.matrix_type = type;
  spec.d_model = 64;
  spec.n_vocab = 96;
  auto bytes = test::MakeTinyModel(spec);
  std::string path = test::TempDir() + "/tiny.gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

}  // namespace

TEST_CASE("run --json generates the requested tokens, greedy is deterministic", "[cli]") {
  const std::string model = TinyModelFile();
  auto r = RunLmstation("run " + model + " -p abc -n 12 --temp 0 --ignore-eos --json -t 1");
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["tokens"].size() == 12);
  CHECK(j["prompt_tokens"].get<int>() == static_cast<int>(j["prompt_ids"].size()));
  CHECK(j["finish_reason"] == "length");
  auto again = RunLmstation("run " + model + " -p abc -n 12 --temp 0 --ignore-eos --json -t 2");
  CHECK(nlohmann::json::parse(again.out)["tokens"] == j["tokens"]);  // thread count changes nothing
}

TEST_CASE("run with a seed repeats itself, another seed differs", "[cli]") {
  const std::string model = TinyModelFile();
  auto gen = [&](int seed) {
    auto r = RunLmstation("run " + model + " -p xyz -n 24 --temp 20 --top-k 0 --top-p 1 --min-p 0 --ignore-eos --json --seed " + std::to_string(seed));
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out)["tokens"];
  };
  CHECK(gen(11) == gen(11));
  CHECK(gen(11) != gen(12));
}

TEST_CASE("quantize writes a model that info describes and run loads", "[cli]") {
  const std::string model = TinyModelFile();
  const std::string out = test::TempDir() + "/tiny-q8.gguf";
  auto q = RunLmstation("quantize " + model + " " + out + " q8_0", true);
  REQUIRE(q.exit_code == 0);
  auto info = RunLmstation("info " + out + " --json");
  REQUIRE(info.exit_code == 0);
  auto j = nlohmann::json::parse(info.out);
  CHECK(j["tensor_types"].contains("Q8_0"));
  CHECK(j["hparams"]["n_layers"] == 2);
  CHECK(j["metadata"]["general.file_type"] == "7");
  auto r = RunLmstation("run " + out + " -p abc -n 4 --temp 0 --ignore-eos --json");
  CHECK(r.exit_code == 0);
  auto bad = RunLmstation("quantize " + model + " " + out + " Q5_9", true);
  CHECK(bad.exit_code != 0);
  CHECK(bad.out.find("cannot quantize to 'Q5_9'") != std::string::npos);
}

TEST_CASE("tokenize prints ids and reads JSON lines", "[cli]") {
  const std::string model = TinyModelFile();
  auto r = RunLmstation("tokenize " + model + " 'bab'");
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "65 93\n");  // tiny vocabulary: '!' + i is token i ('b' is 65); "ab" is 93
  const std::string lines = test::TempDir() + "/lines.jsonl";
  std::ofstream(lines) << "\"ab\"\n\"b\"\n";
  auto f = RunLmstation("tokenize " + model + " x --file " + lines);
  REQUIRE(f.exit_code == 0);
  CHECK(f.out == "93\n65\n");
}

TEST_CASE("bad input gives a clear error and a non-zero exit", "[cli]") {
  const std::string dir = test::TempDir();
  std::ofstream(dir + "/junk.gguf") << "this is not a gguf file at all";
  auto r = RunLmstation("run " + dir + "/junk.gguf -p hi", true);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("error:") != std::string::npos);
  CHECK(r.out.find("junk.gguf") != std::string::npos);
  auto missing = RunLmstation("info " + dir + "/nope.gguf", true);
  CHECK(missing.exit_code == 1);
  CHECK(missing.out.find("no such model file") != std::string::npos);
  auto temp = RunLmstation("run " + TinyModelFile() + " -p hi --top-p 0", true);
  CHECK(temp.exit_code == 1);
  CHECK(temp.out.find("top_p") != std::string::npos);
}

TEST_CASE("perplexity and bench run end to end", "[cli]") {
  const std::string model = TinyModelFile();
  const std::string text = test::TempDir() + "/text.txt";
  {
    std::ofstream t(text);
    for (int i = 0; i < 40; ++i) t << "abcdefghij klmnopq rstuvw xyz ";
  }
  auto p = RunLmstation("perplexity " + model + " " + text + " --ctx 64 --json");
  REQUIRE(p.exit_code == 0);
  auto j = nlohmann::json::parse(p.out);
  CHECK(j["ppl"].get<double>() > 1.0);
  CHECK(j["scored_tokens"].get<int>() == j["chunks"].get<int>() * 31);
  auto b = RunLmstation("bench " + model + " -p 32 -n 8 -r 2 --json");
  REQUIRE(b.exit_code == 0);
  auto bj = nlohmann::json::parse(b.out);
  CHECK(bj["results"].size() == 2);
  CHECK(bj["results"][0]["tokens_per_s"].get<double>() > 0);
}

}  // namespace lms

namespace lms {

TEST_CASE("info --devices lists the CPU, --device cuda fails plainly without a usable GPU", "[cli][device]") {
  auto r = RunLmstation("info --devices", true);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("cpu") == 0);
  auto j = nlohmann::json::parse(RunLmstation("info --devices --json").out);
  CHECK(j["devices"][0]["device"] == "cpu");
  const bool has_gpu = j["devices"].size() > 1;
  const std::string model = TinyModelFile();
  auto bad = RunLmstation("run " + model + " -p abc -n 2 --device gpu7", true);
  CHECK(bad.exit_code == 1);
  CHECK(bad.out.find("gpu7") != std::string::npos);
  if (has_gpu) return;  // the CUDA run itself is checked by lms_gpu_tests on a GPU machine
  auto cuda = RunLmstation("run " + model + " -p abc -n 2 --device cuda", true);
  CHECK(cuda.exit_code == 1);
  CHECK((cuda.out.find("built without CUDA") != std::string::npos || cuda.out.find("CUDA device") != std::string::npos));
}

}  // namespace lms
