// The tokenizer of the default model (SmolLM2-135M-Instruct): special tokens, end of generation,
// round-trips of varied text, and speed on 100 KB of English.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/model/gguf.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"
#include "tests/core/tokenizer/tokenizer_test_util.h"
#include "tests/test_support.h"

namespace lms {
namespace {

std::optional<std::string> SmolLmPath() { return test::DefaultModelPath(); }

std::unique_ptr<Tokenizer> LoadSmolLm(const std::string& path) {
  auto file = gguf::GgufFile::Open(path);
  INFO(file.status().ToString());
  REQUIRE(file.ok());
  auto tok = Tokenizer::FromGguf(**file);
  INFO(tok.status().ToString());
  REQUIRE(tok.ok());
  return std::move(tok).value();
}

// ~100 KB of English prose with punctuation, numbers and line breaks, varied by a seeded RNG.
std::string EnglishText(size_t bytes) {
  static const char* kWords[] = {
      "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
      "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
      "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will",
      "would", "who", "so", "no", "language", "model", "tokenizer", "workstation", "training", "evaluation",
      "parallel", "pipeline", "throughput", "latency", "memory", "Wednesday", "London", "Einstein", "1984",
      "3.5", "100", "2,048", "don't", "it's", "we're", "they'll", "I've"};
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> word(0, std::size(kWords) - 1);
  std::uniform_int_distribution<int> punct(0, 30);
  std::string text;
  text.reserve(bytes + 64);
  bool sentence_start = true;
  while (text.size() < bytes) {
    std::string w = kWords[word(rng)];
    if (sentence_start && w[0] >= 'a' && w[0] <= 'z') w[0] = static_cast<char>(w[0] - 'a' + 'A');
    text += w;
    sentence_start = false;
    const int p = punct(rng);
    if (p == 0) {
      text += ".\n\n";
      sentence_start = true;
    } else if (p < 3) {
      text += ". ";
      sentence_start = true;
    } else if (p < 5) {
      text += ", ";
    } else {
      text += ' ';
    }
  }
  return text;
}

}  // namespace

TEST_CASE("SmolLM2 tokenizer: chat special tokens and end of generation", "[tokenizer][model]") {
  auto path = SmolLmPath();
  if (!path) LMS_SKIP("SmolLM2 model not present (set LMS_TEST_MODEL)");
  auto tok = LoadSmolLm(*path);
  CHECK(tok->model_name() == "gpt2");
  CHECK(tok->pre_name() == "smollm");
  CHECK(tok->n_vocab() == 49152);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  CHECK_FALSE(tok->add_bos());  // tokenizer.ggml.add_bos_token = false in this file

  const int32_t im_start = *tok->FindToken("<|im_start|>");
  const int32_t im_end = *tok->FindToken("<|im_end|>");
  CHECK(im_start == 1);
  CHECK(im_end == 2);
  const std::string chat = "<|im_start|>user\nHi<|im_end|>";
  const std::vector<int32_t> ids = tok->Encode(chat, false, true);
  REQUIRE(ids.size() >= 4);
  CHECK(ids.front() == im_start);
  CHECK(ids.back() == im_end);
  CHECK(tok->Decode(ids) == chat);
  CHECK(tok->Decode(ids, /*render_special=*/false) == "user\nHi");
  // The inner text is tokenized as ordinary text: "user", "\n", "Hi".
  const std::vector<int32_t> inner(ids.begin() + 1, ids.end() - 1);
  CHECK(inner == tok->Encode("user\nHi", false, false));

  // Without parse_special the markers are plain text.
  const std::vector<int32_t> plain = tok->Encode(chat, false, false);
  CHECK(std::find(plain.begin(), plain.end(), im_start) == plain.end());
  CHECK(plain.size() > ids.size());
  CHECK(tok->Decode(plain) == chat);

  CHECK(tok->IsEndOfGeneration(im_end));
  CHECK(tok->IsEndOfGeneration(*tok->FindToken("<|endoftext|>")));
  CHECK_FALSE(tok->IsEndOfGeneration(im_start));
  CHECK_FALSE(tok->IsEndOfGeneration(ids[1]));
  CHECK(tok->IsControl(im_start));
  CHECK_FALSE(tok->IsControl(ids[1]));

  // Digits are split one by one (the smollm pre-tokenizer).
  const std::vector<int32_t> digits = tok->Encode("2024", false, false);
  CHECK(digits.size() == 4);
}

TEST_CASE("SmolLM2 tokenizer round-trips varied text and streams it", "[tokenizer][model]") {
  auto path = SmolLmPath();
  if (!path) LMS_SKIP("SmolLM2 model not present (set LMS_TEST_MODEL)");
  auto tok = LoadSmolLm(*path);
  std::vector<std::string> texts = test::VariedTexts(400, /*seed=*/2024);
  texts.push_back("");
  texts.push_back(std::string(300, ' '));
  texts.push_back(std::string(100, '\n') + "x");
  texts.push_back(std::string(1000, 'a'));
  texts.push_back("    def __init__(self):\n        self.x = {'a': [1, 2, 3]}\n");
  for (const std::string& s : texts) {
    const std::vector<int32_t> ids = tok->Encode(s, false, false);
    INFO("'" << s << "'");
    REQUIRE(tok->Decode(ids) == s);
    StreamDecoder stream(*tok);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string chunk = stream.Push(id);
      REQUIRE(tok::IsValidUtf8(chunk));
      streamed += chunk;
    }
    streamed += stream.Flush();
    REQUIRE(streamed == s);
  }
}

TEST_CASE("SmolLM2 tokenizer speed on 100 KB of English", "[tokenizer][model][speed]") {
  auto path = SmolLmPath();
  if (!path) LMS_SKIP("SmolLM2 model not present (set LMS_TEST_MODEL)");
  auto tok = LoadSmolLm(*path);
  const std::string text = EnglishText(100 * 1024);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->Encode(text, false, true);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("encoded " << text.size() << " bytes into " << ids.size() << " tokens in " << secs * 1000 << " ms");
  CHECK(ids.size() > text.size() / 8);
  CHECK(tok->Decode(ids) == text);
#ifdef NDEBUG
  CHECK(secs < 1.0);
#endif
}

}  // namespace lms
