// Malformed GGUF images: each must be rejected with a message naming the problem, never crash.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/model/gguf.h"

using namespace lms;
using namespace lms::gguf;

namespace {

// Assembles raw GGUF bytes by hand, so tests can write what the writer never would.
class Image {
 public:
  Image& U8(uint8_t v) { return Raw(&v, 1); }
  Image& U32(uint32_t v) { return Raw(&v, 4); }
  Image& U64(uint64_t v) { return Raw(&v, 8); }
  Image& Str(const std::string& s) {
    U64(s.size());
    return Raw(s.data(), s.size());
  }
  Image& Header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    Raw("GGUF", 4);
    U32(version);
    U64(n_tensors);
    return U64(n_kv);
  }
  Image& KvU32(const std::string& key, uint32_t v) {
    Str(key);
    U32(static_cast<uint32_t>(ValueType::kUint32));
    return U32(v);
  }
  Image& KvStr(const std::string& key, const std::string& v) {
    Str(key);
    U32(static_cast<uint32_t>(ValueType::kString));
    return Str(v);
  }
  Image& Tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type, uint64_t offset) {
    Str(name);
    U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    U32(type);
    return U64(offset);
  }
  Image& Align(size_t a) {
    while (bytes.size() % a) bytes.push_back(0);
    return *this;
  }
  Image& Zeros(size_t n) {
    bytes.resize(bytes.size() + n, 0);
    return *this;
  }
  Image& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
    return *this;
  }
  std::vector<uint8_t> bytes;
};

constexpr uint32_t kF32 = 0;
constexpr uint32_t kQ4_0 = 2;

// Parses and requires failure; returns the message.
std::string Reject(const std::vector<uint8_t>& bytes) {
  auto r = GgufFile::FromBytes(bytes);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

// A small valid file: a few metadata types and two tensors, the last one with data.
std::vector<uint8_t> SmallValidFile() {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint32("llama.block_count", 2);
  w.SetStringArray("tokenizer.ggml.tokens", {"a", "bc"});
  Value nested;
  nested.type = ValueType::kArray;
  nested.elem_type = ValueType::kArray;
  Value inner;
  inner.type = ValueType::kArray;
  inner.elem_type = ValueType::kInt16;
  inner.ints = {1, -1};
  nested.arrays = {inner};
  w.SetValue("x.nested", nested);
  w.SetBool("x.flag", true);
  std::vector<uint8_t> data(18 * 2, 0x11);
  REQUIRE(w.AddTensor("w.f32", TensorType::kF32, {3}, data.data(), 12).ok());
  REQUIRE(w.AddTensor("w.q4", TensorType::kQ4_0, {32, 2}, data.data(), 36).ok());
  return w.Serialize();
}

}  // namespace

TEST_CASE("GGUF truncated at every byte offset is rejected", "[gguf]") {
  std::vector<uint8_t> full = SmallValidFile();
  REQUIRE(GgufFile::FromBytes(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = GgufFile::FromBytes(cut);
    INFO("truncated to " << n << " of " << full.size() << " bytes");
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("GGUF header errors", "[gguf]") {
  CHECK_THAT(Reject({}), Catch::Contains("only 0 bytes"));
  CHECK_THAT(Reject({'G', 'G'}), Catch::Contains("only 2 bytes"));

  Image bad_magic;
  bad_magic.Raw("GGML", 4).U32(3).U64(0).U64(0);
  CHECK_THAT(Reject(bad_magic.bytes), Catch::Contains("bad magic 'GGML'"));

  Image v1;
  v1.Header(0, 0, 1);
  auto r1 = GgufFile::FromBytes(v1.bytes);
  REQUIRE_FALSE(r1.ok());
  CHECK(r1.status().code() == StatusCode::kUnsupported);
  CHECK_THAT(r1.status().message(), Catch::Contains("version 1"));

  Image v4;
  v4.Header(0, 0, 4);
  CHECK_THAT(Reject(v4.bytes), Catch::Contains("version 4"));
  Image v0;
  v0.Header(0, 0, 0);
  CHECK_THAT(Reject(v0.bytes), Catch::Contains("version 0"));
  Image swapped;
  swapped.Header(0, 0, 0x03000000u);
  CHECK_THAT(Reject(swapped.bytes), Catch::Contains("big-endian"));

  Image v2;  // version 2 has the same layout as 3 and is accepted
  v2.Header(0, 1, 2).KvU32("k", 1);
  auto ok2 = GgufFile::FromBytes(v2.bytes);
  REQUIRE(ok2.ok());
  CHECK((*ok2)->version() == 2);
}

TEST_CASE("GGUF impossible counts are rejected before allocating", "[gguf]") {
  Image kv;
  kv.Header(0, uint64_t{1} << 60).KvU32("k", 1);
  CHECK_THAT(Reject(kv.bytes), Catch::Contains("metadata count 1152921504606846976"));
  Image t;
  t.Header(~uint64_t{0}, 0);
  CHECK_THAT(Reject(t.bytes), Catch::Contains("tensor count 18446744073709551615"));
  Image both;  // each count alone could fit, together they cannot
  both.Header(1, 2).KvU32("a", 1).KvU32("b", 2);
  CHECK_THAT(Reject(both.bytes), Catch::Contains("tensor count 1"));
}

TEST_CASE("GGUF metadata errors name the key", "[gguf]") {
  SECTION("key length past end") {
    Image img;
    img.Header(0, 1).U64(1000).Raw("abcdefghijklmnop", 16);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("metadata entry #0") && Catch::Contains("key length 1000") &&
                                      Catch::Contains("at byte 24"));
  }
  SECTION("string value length past end") {
    Image img;
    img.Header(0, 1).Str("general.name").U32(8).U64(~uint64_t{0}).Zeros(8);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'general.name'") && Catch::Contains("string value length"));
  }
  SECTION("unknown value type") {
    Image img;
    img.Header(0, 1).Str("x.bad").U32(13).U32(0);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'x.bad'") && Catch::Contains("unknown value type 13"));
  }
  SECTION("unknown array element type") {
    Image img;
    img.Header(0, 1).Str("x.arr").U32(9).U32(99).U64(0).Zeros(4);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'x.arr'") && Catch::Contains("unknown array element type 99"));
  }
  SECTION("array length past end") {
    Image img;
    img.Header(0, 1).Str("x.arr").U32(9).U32(static_cast<uint32_t>(ValueType::kUint32)).U64(1000).Zeros(16);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'x.arr'") && Catch::Contains("array of 1000 x uint32"));
  }
  SECTION("huge array of strings") {
    Image img;
    img.Header(0, 1).Str("x.arr").U32(9).U32(8).U64(uint64_t{1} << 62).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("array of 4611686018427387904 x string"));
  }
  SECTION("string inside an array past end") {
    Image img;
    img.Header(0, 1).Str("x.arr").U32(9).U32(8).U64(2).Str("ok").U64(500);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'x.arr'") && Catch::Contains("array string length 500"));
  }
  SECTION("arrays nested too deep") {
    Image img;
    img.Header(0, 1).Str("x.deep").U32(9);
    for (int k = 0; k < 20; ++k) img.U32(9).U64(1);
    img.U32(4).U64(0);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'x.deep'") && Catch::Contains("nested deeper"));
  }
  SECTION("bool that is neither 0 nor 1") {
    Image img;
    img.Header(0, 1).Str("x.flag").U32(7).U8(2);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'x.flag'") && Catch::Contains("bool value 2"));
  }
  SECTION("empty key") {
    Image img;
    img.Header(0, 1).Str("").U32(4).U32(1);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("empty key"));
  }
  SECTION("duplicate key") {
    Image img;
    img.Header(0, 3).KvU32("a", 1).KvU32("b", 2).KvStr("a", "again");
    CHECK_THAT(Reject(img.bytes), Catch::Contains("duplicate metadata key 'a'") && Catch::Contains("#0 and #2"));
  }
}

TEST_CASE("GGUF general.alignment must be a nonzero power of two", "[gguf]") {
  for (uint32_t a : {0u, 3u, 48u, 0x80000001u}) {
    Image img;
    img.Header(0, 1).KvU32("general.alignment", a);
    INFO("alignment " << a);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("general.alignment") && Catch::Contains("power of two") &&
                                      Catch::Contains(std::to_string(a)));
  }
  Image str;
  str.Header(0, 1).KvStr("general.alignment", "64");
  CHECK_THAT(Reject(str.bytes), Catch::Contains("general.alignment must be an integer"));
  Image big;  // a uint64 beyond 2^31
  big.Header(0, 1).Str("general.alignment").U32(10).U64(uint64_t{1} << 40);
  CHECK_THAT(Reject(big.bytes), Catch::Contains("no larger than 2^31"));

  Image ok;  // 64 is honoured: the data section starts at a multiple of 64
  ok.Header(1, 1).KvU32("general.alignment", 64).Tensor("t", {4}, kF32, 0).Align(64).Zeros(16);
  auto r = GgufFile::FromBytes(ok.bytes);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK((*r)->alignment() == 64);
  CHECK((*r)->data_offset() % 64 == 0);
}

TEST_CASE("GGUF tensor info errors name the tensor", "[gguf]") {
  SECTION("n_dims 0 and 5") {
    for (uint32_t nd : {0u, 5u}) {
      Image img;
      img.Header(1, 0).Str("blk.0.w").U32(nd);
      for (uint32_t k = 0; k < nd; ++k) img.U64(1);
      img.U32(kF32).U64(0).Align(32).Zeros(64);
      CHECK_THAT(Reject(img.bytes), Catch::Contains("'blk.0.w'") && Catch::Contains("n_dims " + std::to_string(nd)));
    }
  }
  SECTION("unknown tensor type") {
    Image img;
    img.Header(1, 0).Tensor("blk.0.w", {4}, 99, 0).Align(32).Zeros(64);
    auto r = GgufFile::FromBytes(img.bytes);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kUnsupported);
    CHECK_THAT(r.status().message(), Catch::Contains("'blk.0.w'") && Catch::Contains("unknown tensor type id 99"));
  }
  SECTION("negative dimension") {
    Image img;
    img.Header(1, 0).Tensor("neg", {4, ~uint64_t{0}}, kF32, 0).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'neg'") && Catch::Contains("dimension 1"));
  }
  SECTION("element count overflow") {
    Image img;
    img.Header(1, 0).Tensor("big", {uint64_t{1} << 32, uint64_t{1} << 32}, kF32, 0).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'big'") && Catch::Contains("overflows"));
  }
  SECTION("row count overflow hidden by a zero dimension") {
    Image img;
    img.Header(1, 0).Tensor("zero", {0, uint64_t{1} << 62, 8}, kF32, 0).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'zero'") && Catch::Contains("row count"));
  }
  SECTION("byte size overflow") {
    Image img;  // 2^62 F32 elements fit int64 as a count but not as bytes
    img.Header(1, 0).Tensor("bytes", {uint64_t{1} << 31, uint64_t{1} << 31}, kF32, 0).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'bytes'") && Catch::Contains("byte size"));
  }
  SECTION("row not a multiple of the block size") {
    Image img;
    img.Header(1, 0).Tensor("q", {33}, kQ4_0, 0).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'q'") && Catch::Contains("block size 32"));
  }
  SECTION("empty name") {
    Image img;
    img.Header(1, 0).Tensor("", {4}, kF32, 0).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("tensor info #0") && Catch::Contains("empty tensor name"));
  }
  SECTION("name length past end") {
    Image img;
    img.Header(1, 0).U64(1u << 20).Zeros(40);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("tensor info #0") && Catch::Contains("tensor name length"));
  }
  SECTION("duplicate name") {
    Image img;
    img.Header(2, 0).Tensor("w", {4}, kF32, 0).Tensor("w", {4}, kF32, 32).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("duplicate tensor name 'w'"));
  }
}

TEST_CASE("GGUF tensor data placement errors", "[gguf]") {
  SECTION("misaligned offset") {
    Image img;
    img.Header(1, 0).Tensor("w", {4}, kF32, 16).Align(32).Zeros(64);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'w'") && Catch::Contains("offset 16") &&
                                      Catch::Contains("alignment 32"));
  }
  SECTION("data past end of file") {
    Image img;
    img.Header(1, 0).Tensor("blk.0.attn_q.weight", {16}, kF32, 32).Align(32);
    size_t data_start = img.bytes.size();
    img.Zeros(70);
    std::string msg = Reject(img.bytes);
    CHECK_THAT(msg, Catch::Contains("tensor 'blk.0.attn_q.weight': data [" + std::to_string(data_start + 32) + ", " +
                                    std::to_string(data_start + 96) + ") extends past end of file (size " +
                                    std::to_string(img.bytes.size()) + ")"));
  }
  SECTION("offset far past end, no overflow in the message") {
    Image img;
    img.Header(1, 0).Tensor("w", {4}, kF32, ~uint64_t{31}).Align(32).Zeros(32);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'w'") && Catch::Contains("extends past end of file"));
  }
  SECTION("data section starts past end of file") {
    Image img;
    img.Header(1, 1).KvU32("general.alignment", 4096).Tensor("w", {0}, kF32, 0);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("data section would start at byte 4096"));
  }
  SECTION("overlapping tensors") {
    Image img;  // a: [0, 64), b: [32, 96)
    img.Header(2, 0).Tensor("a", {16}, kF32, 0).Tensor("b", {16}, kF32, 32).Align(32).Zeros(96);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("'b'") && Catch::Contains("overlaps tensor 'a'"));
  }
  SECTION("identical regions overlap too") {
    Image img;
    img.Header(2, 0).Tensor("a", {8}, kF32, 0).Tensor("b", {8}, kF32, 0).Align(32).Zeros(32);
    CHECK_THAT(Reject(img.bytes), Catch::Contains("overlaps"));
  }
  SECTION("adjacent tensors and zero-size tensors are fine") {
    Image img;
    img.Header(3, 0).Tensor("a", {8}, kF32, 0).Tensor("b", {8}, kF32, 32).Tensor("e", {0, 5}, kF32, 32).Align(32).Zeros(64);
    auto r = GgufFile::FromBytes(img.bytes);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK((*r)->FindTensor("e")->n_bytes == 0);
    CHECK((*r)->FindTensor("e")->n_elements == 0);
  }
}

TEST_CASE("GGUF messages quote hostile names safely", "[gguf]") {
  Image img;
  img.Header(0, 1).Str(std::string("bad\x01\nkey", 8)).U32(77);
  std::string msg = Reject(img.bytes);
  CHECK_THAT(msg, Catch::Contains("'bad\\x01\\x0akey'"));
  CHECK(msg.find('\n') == std::string::npos);
}
