// LoadVocab / Tokenizer::FromGguf on GGUF images written in memory: what is read, defaults,
// and errors that name the offending key.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/model/gguf.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"

namespace lms {
namespace {

// A byte-level BPE vocabulary: 256 byte characters + "he", with <|im_end|> as control token.
gguf::GgufWriter BpeWriter() {
  gguf::GgufWriter w;
  w.SetString("general.name", "tiny");
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetString("tokenizer.ggml.pre", "smollm");
  std::vector<std::string> tokens(tok::ByteToUnicode().begin(), tok::ByteToUnicode().end());
  tokens.push_back("he");
  tokens.push_back("<|im_end|>");
  std::vector<int32_t> types(256 + 1, 1);  // bytes and "he": normal
  types.push_back(3);                      // <|im_end|>: control
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetInt32Array("tokenizer.ggml.token_type", types);
  w.SetStringArray("tokenizer.ggml.merges", {"h e"});
  w.SetUint32("tokenizer.ggml.bos_token_id", 257);
  w.SetUint32("tokenizer.ggml.eos_token_id", 257);
  w.SetBool("tokenizer.ggml.add_bos_token", true);
  return w;
}

Result<VocabData> Load(const gguf::GgufWriter& w) {
  auto file = gguf::GgufFile::FromBytes(w.Serialize());
  REQUIRE(file.ok());
  return LoadVocab(**file);
}

}  // namespace

TEST_CASE("LoadVocab reads tokenizer metadata from GGUF", "[tokenizer]") {
  gguf::GgufWriter w = BpeWriter();
  auto v = Load(w);
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  CHECK(v->model == "gpt2");
  CHECK(v->pre == "smollm");
  CHECK(v->general_name == "tiny");
  CHECK(v->tokens.size() == 258);
  CHECK(v->token_types.size() == 258);
  CHECK(v->merges == std::vector<std::string>{"h e"});
  CHECK(v->scores.empty());
  CHECK(v->bos_id == 257);
  CHECK(v->eos_id == 257);
  CHECK_FALSE(v->unk_id.has_value());
  CHECK(v->add_bos == true);
  CHECK_FALSE(v->add_eos.has_value());

  auto file = gguf::GgufFile::FromBytes(w.Serialize());
  REQUIRE(file.ok());
  auto t = Tokenizer::FromGguf(**file);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  CHECK((*t)->Encode("he", true, false) == std::vector<int32_t>{257, 256});
  CHECK((*t)->IsEndOfGeneration(257));
}

TEST_CASE("LoadVocab errors name the key", "[tokenizer]") {
  const auto error_of = [](const gguf::GgufWriter& w) {
    auto v = Load(w);
    REQUIRE_FALSE(v.ok());
    return v.status().message();
  };
  {
    gguf::GgufWriter w;
    w.SetString("tokenizer.ggml.model", "gpt2");
    CHECK(error_of(w).find("tokenizer.ggml.tokens") != std::string::npos);
  }
  {
    gguf::GgufWriter w = BpeWriter();
    w.SetUint32("tokenizer.ggml.model", 3);  // replaces the string: wrong type
    CHECK(error_of(w).find("tokenizer.ggml.model") != std::string::npos);
  }
  {
    gguf::GgufWriter w = BpeWriter();
    w.SetInt32Array("tokenizer.ggml.token_type", {1, 1, 1});
    CHECK(error_of(w).find("tokenizer.ggml.token_type") != std::string::npos);
  }
  {
    gguf::GgufWriter w = BpeWriter();
    w.SetFloat32Array("tokenizer.ggml.scores", {0.5f});
    CHECK(error_of(w).find("tokenizer.ggml.scores") != std::string::npos);
  }
  {
    gguf::GgufWriter w = BpeWriter();
    w.SetString("tokenizer.ggml.add_bos_token", "yes");
    CHECK(error_of(w).find("tokenizer.ggml.add_bos_token") != std::string::npos);
  }
  {
    gguf::GgufWriter w = BpeWriter();
    w.SetString("tokenizer.ggml.bos_token_id", "1");
    CHECK(error_of(w).find("tokenizer.ggml.bos_token_id") != std::string::npos);
  }
  {
    // Readable, but not a tokenizer we build.
    gguf::GgufWriter w = BpeWriter();
    w.SetString("tokenizer.ggml.model", "t5");
    auto file = gguf::GgufFile::FromBytes(w.Serialize());
    REQUIRE(file.ok());
    auto t = Tokenizer::FromGguf(**file);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == StatusCode::kUnsupported);
    CHECK(t.status().message().find("t5") != std::string::npos);
  }
  {
    // An out-of-range special id falls back to the model type's default, with a warning.
    gguf::GgufWriter w = BpeWriter();
    w.SetUint32("tokenizer.ggml.eos_token_id", 100000);
    w.SetBool("tokenizer.ggml.add_bos_token", false);
    auto file = gguf::GgufFile::FromBytes(w.Serialize());
    REQUIRE(file.ok());
    auto t = Tokenizer::FromGguf(**file);
    REQUIRE(t.ok());
    CHECK((*t)->eos_id() == 11);  // llama.cpp's BPE default
  }
}

}  // namespace lms
