// Conformance with llama.cpp's tokenizer test vectors (ids produced by the original Hugging Face
// tokenizers), read from ../shared/data/tokenizer, and round-trips on every vocabulary there.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/model/gguf.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "tests/core/tokenizer/tokenizer_test_util.h"
#include "tests/test_support.h"

namespace lms {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// NAME.gguf.inp holds the test strings, each followed by "\n__ggml_vocab_test__\n" (so a
// string's own last newline is part of the separator); NAME.gguf.out one line of ids per string.
struct Vectors {
  std::vector<std::string> inputs;
  std::vector<std::vector<int32_t>> expected;
};

Vectors ReadVectors(const std::string& base) {
  Vectors v;
  const std::string raw = ReadFile(base + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      v.inputs.push_back(raw.substr(pos));
      break;
    }
    v.inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::istringstream out(ReadFile(base + ".out"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    v.expected.push_back(std::move(ids));
  }
  return v;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out;
}

std::string Join(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

}  // namespace

TEST_CASE("tokenizer matches llama.cpp's vocab test vectors", "[tokenizer][conformance]") {
  auto data = test::SharedDataDir();
  if (!data || !std::filesystem::exists(*data + "/tokenizer")) LMS_SKIP("no shared tokenizer data");

  struct Case {
    const char* name;
    const char* model;
    const char* pre;
  };
  const Case cases[] = {
      {"gpt-2", "gpt2", "gpt-2"},         {"starcoder", "gpt2", "starcoder"},
      {"llama-spm", "llama", "default"},  {"phi-3", "llama", "default"},
      {"deepseek-coder", "gpt2", "deepseek-coder"}, {"falcon", "gpt2", "falcon"},
      {"mpt", "gpt2", "mpt"},             {"refact", "gpt2", "refact"},
  };
  for (const Case& c : cases) {
    const std::string base = *data + "/tokenizer/ggml-vocab-" + c.name + ".gguf";
    if (!std::filesystem::exists(base)) {
      WARN("SKIPPED: " << base << " is absent");
      continue;
    }
    auto file = gguf::GgufFile::Open(base);
    INFO(c.name << ": " << file.status().ToString());
    REQUIRE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    INFO(tok.status().ToString());
    REQUIRE(tok.ok());
    CHECK((*tok)->model_name() == c.model);
    CHECK((*tok)->pre_name() == c.pre);

    const Vectors v = ReadVectors(base);
    REQUIRE(v.inputs.size() == v.expected.size());
    REQUIRE(v.inputs.size() >= 40);
    int failures = 0;
    for (size_t i = 0; i < v.inputs.size(); ++i) {
      const std::vector<int32_t> got = (*tok)->Encode(v.inputs[i], /*add_special=*/false, /*parse_special=*/false);
      if (got != v.expected[i]) {
        ++failures;
        UNSCOPED_INFO(c.name << " '" << Escape(v.inputs[i]) << "': expected " << Join(v.expected[i]) << "got "
                             << Join(got));
      }
      // Decode(Encode(s)) == s (SentencePiece's prefixed space is removed by Decode).
      CHECK((*tok)->Decode(got) == v.inputs[i]);
    }
    CHECK(failures == 0);
  }
}

TEST_CASE("every shared vocabulary round-trips varied text", "[tokenizer][conformance]") {
  auto data = test::SharedDataDir();
  if (!data || !std::filesystem::exists(*data + "/tokenizer")) LMS_SKIP("no shared tokenizer data");
  const std::vector<std::string> texts = test::VariedTexts(150, /*seed=*/7);
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(*data + "/tokenizer")) {
    if (entry.path().extension() != ".gguf") continue;
    auto file = gguf::GgufFile::Open(entry.path().string());
    REQUIRE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    INFO(entry.path().filename().string() << ": " << tok.status().ToString());
    REQUIRE(tok.ok());
    for (const std::string& s : texts) {
      const std::vector<int32_t> ids = (*tok)->Encode(s, false, false);
      INFO(entry.path().filename().string() << " '" << Escape(s) << "' -> " << Join(ids));
      REQUIRE((*tok)->Decode(ids) == s);
      // With BOS/EOS added and special tokens hidden, the text still comes back.
      REQUIRE((*tok)->Decode((*tok)->Encode(s, true, false), /*render_special=*/false) == s);
    }
    ++checked;
  }
  CHECK(checked >= 9);
}

}  // namespace lms
