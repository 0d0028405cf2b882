// Tokenizer algorithms on small vocabularies built in code: BPE merge order, SentencePiece
// scores and byte fallback, special-token splitting, BOS/EOS, decoding and streaming.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/tokenizer/pretokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"

namespace lms {
namespace {

int32_t Id(const Tokenizer& t, std::string_view text) {
  auto id = t.FindToken(text);
  REQUIRE(id.has_value());
  return *id;
}

// Byte-level BPE vocabulary: the 256 GPT-2 byte characters (id = byte), a few merges, and
// special tokens. "Ġ" is the GPT-2 character for ' '.
VocabData TinyBpeVocab() {
  VocabData v;
  v.model = "gpt2";
  v.pre = "gpt-2";
  for (const std::string& c : tok::ByteToUnicode()) {
    v.tokens.push_back(c);
    v.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  const auto add = [&](std::string text, TokenType type) {
    v.tokens.push_back(std::move(text));
    v.token_types.push_back(static_cast<int32_t>(type));
  };
  // Merge ranks: "l l" first, then "h e", "e l", "he ll", "hell o", "Ġ hello".
  v.merges = {"l l", "h e", "e l", "he ll", "hell o", "\xC4\xA0 hello"};
  for (const char* t : {"ll", "he", "el", "hell", "hello", "\xC4\xA0hello"}) add(t, TokenType::kNormal);
  add("<s>", TokenType::kControl);
  add("<|im_start|>", TokenType::kControl);
  add("<|im_end|>", TokenType::kControl);
  add("<tool>", TokenType::kUserDefined);
  v.bos_id = 262;  // <s>
  v.eos_id = 264;  // <|im_end|>
  return v;
}

std::unique_ptr<Tokenizer> Make(VocabData v) {
  auto t = Tokenizer::FromVocab(std::move(v));
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(t).value();
}

std::vector<int32_t> Bytes(std::string_view s) {
  std::vector<int32_t> ids;
  for (char c : s) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

}  // namespace

TEST_CASE("BPE merges by rank, leftmost first", "[tokenizer]") {
  auto t = Make(TinyBpeVocab());
  REQUIRE(t->model_name() == "gpt2");
  REQUIRE(t->n_vocab() == 266);
  // "hello": l+l (rank 0) -> h+e (1) -> he+ll (3) -> hell+o (4).
  CHECK(t->Encode("hello", false, false) == std::vector<int32_t>{Id(*t, "hello")});
  // " hello" is one pre-token; Ġ+hello is merge 5.
  CHECK(t->Encode(" hello", false, false) == std::vector<int32_t>{Id(*t, "\xC4\xA0hello")});
  // "hel": h+e (rank 1) beats e+l (rank 2).
  CHECK(t->Encode("hel", false, false) == std::vector<int32_t>{Id(*t, "he"), 'l'});
  // "elll": l+l at the leftmost pair first, then nothing ranks "e ll" -> e, ll, l.
  CHECK(t->Encode("elll", false, false) == std::vector<int32_t>{'e', Id(*t, "ll"), 'l'});
  // Unmerged bytes map to their byte tokens (id = byte value in this vocabulary).
  CHECK(t->Encode("ab x", false, false) == Bytes("ab x"));
  CHECK(t->Encode("", true, true).empty());
}

TEST_CASE("BPE special tokens, BOS/EOS and end of generation", "[tokenizer]") {
  VocabData v = TinyBpeVocab();
  v.add_bos = true;
  v.add_eos = true;
  auto t = Make(std::move(v));
  const int32_t s = Id(*t, "<s>"), im_start = Id(*t, "<|im_start|>"), im_end = Id(*t, "<|im_end|>");
  const int32_t tool = Id(*t, "<tool>"), hello = Id(*t, "hello");

  CHECK(t->Encode("<|im_start|>hello<|im_end|>", false, true) == std::vector<int32_t>{im_start, hello, im_end});
  CHECK(t->Encode("hello", true, false) == std::vector<int32_t>{s, hello, im_end});
  // Without parse_special the control token's text is ordinary text...
  std::vector<int32_t> plain = t->Encode("<|im_start|>hello", false, false);
  CHECK(std::find(plain.begin(), plain.end(), im_start) == plain.end());
  CHECK(t->Decode(plain) == "<|im_start|>hello");
  // ...but user-defined tokens are always split out.
  CHECK(t->Encode("hello<tool>hello", false, false) == std::vector<int32_t>{hello, tool, hello});

  CHECK(t->IsControl(im_start));
  CHECK_FALSE(t->IsControl(hello));
  CHECK(t->IsEndOfGeneration(im_end));  // the eos
  CHECK_FALSE(t->IsEndOfGeneration(im_start));
  CHECK(t->bos_id() == s);
  CHECK(t->eos_id() == im_end);
  CHECK(t->eot_id() == im_end);  // recognised by its text

  CHECK(t->TokenToPiece(im_start) == "<|im_start|>");
  CHECK(t->TokenToPiece(im_start, /*render_special=*/false).empty());
  CHECK(t->TokenToPiece(tool, false) == "<tool>");  // user-defined tokens always render
  CHECK(t->TokenToPiece(-1).empty());
  CHECK(t->TokenToPiece(100000).empty());
  const std::vector<int32_t> ids{im_start, hello, im_end};
  CHECK(t->Decode(ids) == "<|im_start|>hello<|im_end|>");
  CHECK(t->Decode(ids, false) == "hello");
}

TEST_CASE("BPE round-trips bytes, including invalid UTF-8", "[tokenizer]") {
  auto t = Make(TinyBpeVocab());
  for (std::string s : {"h\xC3\xA9llo w\xC3\xB6rld \xF0\x9F\xA6\x99!", "  \t\n\r\n  x  ", "a'll 12345 ...", "\xE4\xB8\xAD\xE6\x96\x87"}) {
    CHECK(t->Decode(t->Encode(s, false, false)) == s);
  }
  // Bad bytes are tokenized as U+FFFD, as llama.cpp does.
  CHECK(t->Decode(t->Encode("a\xFF" "b", false, false)) == "a\xEF\xBF\xBD" "b");
}

TEST_CASE("BPE vocabulary errors are reported", "[tokenizer]") {
  {
    VocabData v = TinyBpeVocab();
    v.pre = "no-such-pre";
    auto t = Tokenizer::FromVocab(std::move(v));
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == StatusCode::kUnsupported);
    CHECK(t.status().message().find("no-such-pre") != std::string::npos);
  }
  {
    VocabData v = TinyBpeVocab();
    v.model = "bert";
    auto t = Tokenizer::FromVocab(std::move(v));
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == StatusCode::kUnsupported);
  }
  {
    VocabData v = TinyBpeVocab();
    v.tokens.push_back("hello");
    v.token_types.push_back(1);
    auto t = Tokenizer::FromVocab(std::move(v));
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().message().find("duplicate") != std::string::npos);
  }
  {
    VocabData v = TinyBpeVocab();
    v.token_types.pop_back();
    CHECK_FALSE(Tokenizer::FromVocab(std::move(v)).ok());
  }
  {
    VocabData v = TinyBpeVocab();
    v.merges.clear();
    CHECK_FALSE(Tokenizer::FromVocab(std::move(v)).ok());
  }
  {
    VocabData v = TinyBpeVocab();
    v.bos_id = -1;
    v.add_bos = true;
    CHECK_FALSE(Tokenizer::FromVocab(std::move(v)).ok());
  }
}

TEST_CASE("StreamDecoder holds back incomplete UTF-8", "[tokenizer]") {
  auto t = Make(TinyBpeVocab());
  const std::string text = "h\xC3\xA9 \xF0\x9F\xA6\x99 \xE4\xB8\xAD!";
  const std::vector<int32_t> ids = t->Encode(text, false, false);
  // Multi-byte characters here are split over byte tokens.
  REQUIRE(ids.size() > 8);
  StreamDecoder dec(*t);
  std::string joined;
  for (int32_t id : ids) {
    const std::string chunk = dec.Push(id);
    CHECK(tok::IsValidUtf8(chunk));
    joined += chunk;
  }
  joined += dec.Flush();
  CHECK(joined == text);
  // A dangling lead byte comes out on Flush.
  StreamDecoder d2(*t);
  CHECK(d2.Push(0xE4).empty());
  CHECK(d2.Flush() == "\xE4");
}

namespace {

// SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte tokens, then scored pieces.
VocabData TinySpmVocab() {
  VocabData v;
  v.model = "llama";
  const auto add = [&](std::string text, float score, TokenType type) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.token_types.push_back(static_cast<int32_t>(type));
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", 0, TokenType::kByte);
  for (const char* c : {"\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d"}) add(c, -10, TokenType::kNormal);
  add("\xE2\x96\x81h", -5, TokenType::kNormal);
  add("he", -3, TokenType::kNormal);
  add("ll", -2, TokenType::kNormal);
  add("lo", -4, TokenType::kNormal);
  add("llo", -6, TokenType::kNormal);
  add("\xE2\x96\x81he", -1, TokenType::kNormal);
  add("hell", -0.5f, TokenType::kNormal);
  add("hello", -0.1f, TokenType::kNormal);
  return v;
}

}  // namespace

TEST_CASE("SentencePiece merges by score with byte fallback", "[tokenizer]") {
  auto t = Make(TinySpmVocab());
  REQUIRE(t->model_name() == "llama");
  CHECK(t->bos_id() == 1);
  CHECK(t->eos_id() == 2);
  CHECK(t->unk_id() == 0);
  CHECK(t->add_bos());
  CHECK(t->add_space_prefix());
  const int32_t sp = Id(*t, "\xE2\x96\x81"), hello = Id(*t, "hello");
  // "▁hello": ll (-2), he (-3), hell (-0.5), hello (-0.1); "▁hello" is no token.
  CHECK(t->Encode("hello", false, false) == std::vector<int32_t>{sp, hello});
  CHECK(t->Encode("hello", true, false) == std::vector<int32_t>{1, sp, hello});
  // é has no piece: its two bytes fall back to <0xC3> <0xA9> (ids 3 + byte).
  CHECK(t->Encode("h\xC3\xA9", false, false) ==
        std::vector<int32_t>{Id(*t, "\xE2\x96\x81h"), 3 + 0xC3, 3 + 0xA9});
  // A space is prefixed after a special token too.
  CHECK(t->Encode("<s>hello", false, true) == std::vector<int32_t>{1, sp, hello});
  CHECK(t->Encode("", true, false) == std::vector<int32_t>{1});

  for (std::string s : {"hello world", " hello", "  two  spaces ", "h\xC3\xA9llo \xF0\x9F\xA6\x99", "\n\tx"}) {
    CHECK(t->Decode(t->Encode(s, false, false)) == s);
    CHECK(t->Decode(t->Encode(s, true, false), /*render_special=*/false) == s);
  }
  CHECK(t->TokenToPiece(3 + 'A') == "A");
  CHECK(t->TokenToPiece(Id(*t, "\xE2\x96\x81he")) == " he");
}

TEST_CASE("SentencePiece without add_space_prefix", "[tokenizer]") {
  VocabData v = TinySpmVocab();
  v.add_space_prefix = false;
  auto t = Make(std::move(v));
  CHECK(t->Encode("hello", false, false) == std::vector<int32_t>{Id(*t, "hello")});
  CHECK(t->Decode(t->Encode(" hello", false, false)) == " hello");
}

TEST_CASE("pre-tokenizer regexes split like Hugging Face", "[tokenizer]") {
  const auto split = [](std::string_view pre, std::string_view text) {
    auto spec = tok::FindPreTokenizer(pre);
    REQUIRE(spec.has_value());
    auto sp = tok::RegexSplitter::Create(spec->regexes);
    REQUIRE(sp.ok());
    std::vector<std::string_view> pieces;
    (*sp)->Split(text, &pieces);
    return std::vector<std::string>(pieces.begin(), pieces.end());
  };
  using V = std::vector<std::string>;
  CHECK(split("gpt-2", "Hello world's  end\n") == V{"Hello", " world", "'s", " ", " end", "\n"});
  CHECK(split("gpt-2", "x 123") == V{"x", " 123"});
  CHECK(split("smollm", "x 123") == V{"x", " ", "1", "2", "3"});
  CHECK(split("llama-bpe", "12345 abc\n\n  x") == V{"123", "45", " abc", "\n\n", " ", " x"});
  CHECK(split("llama-bpe", "DON'T") == V{"DON", "'T"});
  CHECK(split("qwen2", "x12") == V{"x", "1", "2"});
  // U+0085 (NEL) counts as whitespace, as in Unicode's White_Space.
  CHECK(split("gpt-2", "a\xC2\x85\xC2\x85" "b") == V{"a", "\xC2\x85", "\xC2\x85", "b"});
  CHECK(tok::TranslateWhitespaceClasses(R"(\s+(?!\S)|[^\s\p{L}]|\\s)") ==
        R"([\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}])|[^\t-\r\x{85}\p{Z}\p{L}]|\\s)");
  CHECK_FALSE(tok::FindPreTokenizer("unknown-pre").has_value());
  CHECK(tok::FindPreTokenizer("").has_value());
  CHECK(tok::FindPreTokenizer("llama-bpe")->ignore_merges);
}

TEST_CASE("UTF-8 helpers", "[tokenizer]") {
  CHECK(tok::IncompleteUtf8Tail("a\xE2\x82") == 2);
  CHECK(tok::IncompleteUtf8Tail("a\xE2\x82\xAC") == 0);
  CHECK(tok::IncompleteUtf8Tail("\xF0\x9F") == 2);
  CHECK(tok::IncompleteUtf8Tail("\xF0\x9F\xA6") == 3);
  CHECK(tok::IncompleteUtf8Tail("\xFF") == 0);
  CHECK(tok::IncompleteUtf8Tail("") == 0);
  CHECK(tok::SanitizeUtf8("a\xFF" "b\xE2\x82") == "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(tok::IsValidUtf8("h\xC3\xA9 \xF0\x9F\xA6\x99"));
  CHECK_FALSE(tok::IsValidUtf8("\xED\xA0\x80"));  // surrogate
  CHECK_FALSE(tok::IsValidUtf8("\xC0\xAF"));      // overlong
  CHECK(tok::UnicodeToByte(0x120) == ' ');       // Ġ
  CHECK(tok::ByteToUnicode()['\n'] == "\xC4\x8A");  // Ċ
}

}  // namespace lms
