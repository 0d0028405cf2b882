// GGUF writer -> reader round trips, typed getters, file I/O, and the real model files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/model/gguf.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace lms;
using namespace lms::gguf;

namespace {

Value Scalar(ValueType t, int64_t i = 0, uint64_t u = 0, double f = 0) {
  Value v;
  v.type = t;
  v.i = i;
  v.u = u;
  v.f = f;
  return v;
}

Value Str(std::string s) {
  Value v;
  v.type = ValueType::kString;
  v.str = std::move(s);
  return v;
}

Value Arr(ValueType elem) {
  Value v;
  v.type = ValueType::kArray;
  v.elem_type = elem;
  return v;
}

// Deterministic bytes so every tensor's data differs.
std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<uint8_t>(x >> 24);
  }
  return b;
}

struct TensorSpec {
  std::string name;
  TensorType type;
  std::vector<int64_t> dims;
};

const std::vector<TensorSpec>& Specs() {
  static const std::vector<TensorSpec> specs = {
      {"a.f32", TensorType::kF32, {5, 3}},            // 60 bytes: not a multiple of 32 or 64
      {"b.f16", TensorType::kF16, {8}},
      {"c.q4_0", TensorType::kQ4_0, {64, 2, 1}},
      {"d.q8_0", TensorType::kQ8_0, {32, 1, 1, 3}},
      {"e.empty", TensorType::kF32, {0, 4}},           // zero elements: no data
      {"f.q4_k", TensorType::kQ4_K, {256, 2}},
      {"g.i32", TensorType::kI32, {7}},
      {"h.q6_k", TensorType::kQ6_K, {256}},
  };
  return specs;
}

size_t SpecBytes(const TensorSpec& s) {
  int64_t rows = 1;
  for (size_t k = 1; k < s.dims.size(); ++k) rows *= s.dims[k];
  return RowBytes(s.type, s.dims[0]) * static_cast<size_t>(rows);
}

// A writer holding one value of every type, arrays of each, nested arrays and several tensors.
GgufWriter MakeFullWriter(uint32_t alignment) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetValue("t.u8", Scalar(ValueType::kUint8, 0, 200));
  w.SetValue("t.i8", Scalar(ValueType::kInt8, -100));
  w.SetValue("t.u16", Scalar(ValueType::kUint16, 0, 60000));
  w.SetValue("t.i16", Scalar(ValueType::kInt16, -30000));
  w.SetUint32("t.u32", 4000000000u);
  w.SetInt32("t.i32", -2000000000);
  w.SetFloat32("t.f32", 0.25f);
  w.SetBool("t.bool", true);
  w.SetString("t.string", "h\xC3\xA9llo \"world\"\n");
  w.SetUint64("t.u64", std::numeric_limits<uint64_t>::max());
  w.SetValue("t.i64", Scalar(ValueType::kInt64, std::numeric_limits<int64_t>::min()));
  w.SetValue("t.f64", Scalar(ValueType::kFloat64, 0, 0, 3.141592653589793));
  w.SetString("t.empty_string", "");

  Value u8s = Arr(ValueType::kUint8);
  u8s.uints = {0, 1, 255};
  w.SetValue("a.u8", u8s);
  Value i8s = Arr(ValueType::kInt8);
  i8s.ints = {-128, 0, 127};
  w.SetValue("a.i8", i8s);
  Value u16s = Arr(ValueType::kUint16);
  u16s.uints = {65535, 7};
  w.SetValue("a.u16", u16s);
  Value i16s = Arr(ValueType::kInt16);
  i16s.ints = {-32768, 32767};
  w.SetValue("a.i16", i16s);
  Value u32s = Arr(ValueType::kUint32);
  u32s.uints = {4294967295u, 0};
  w.SetValue("a.u32", u32s);
  w.SetInt32Array("a.i32", {-1, 2, -3, 4});
  w.SetFloat32Array("a.f32", {1.5f, -2.25f, 1e-5f});
  Value bools = Arr(ValueType::kBool);
  bools.uints = {1, 0, 1};
  w.SetValue("a.bool", bools);
  w.SetStringArray("a.string", {"<s>", "", "\xE2\x96\x81hello", std::string("nul\0byte", 8)});
  Value u64s = Arr(ValueType::kUint64);
  u64s.uints = {std::numeric_limits<uint64_t>::max(), 1};
  w.SetValue("a.u64", u64s);
  Value i64s = Arr(ValueType::kInt64);
  i64s.ints = {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  w.SetValue("a.i64", i64s);
  Value f64s = Arr(ValueType::kFloat64);
  f64s.floats = {1e300, -0.0};
  w.SetValue("a.f64", f64s);
  w.SetValue("a.empty", Arr(ValueType::kInt32));

  // [[1, 2, 3], ["x", "y"], [[true]], []] as an array of arrays (element types differ).
  Value nested = Arr(ValueType::kArray);
  Value n0 = Arr(ValueType::kInt32);
  n0.ints = {1, 2, 3};
  Value n1 = Arr(ValueType::kString);
  n1.strings = {"x", "y"};
  Value n2 = Arr(ValueType::kArray);
  Value n2a = Arr(ValueType::kBool);
  n2a.uints = {1};
  n2.arrays = {n2a};
  Value n3 = Arr(ValueType::kFloat32);
  nested.arrays = {n0, n1, n2, n3};
  w.SetValue("a.nested", nested);

  w.SetAlignment(alignment);
  uint32_t seed = 1;
  for (const TensorSpec& s : Specs()) {
    std::vector<uint8_t> data = Pattern(SpecBytes(s), seed++);
    Status st = w.AddTensor(s.name, s.type, s.dims, data.data(), data.size());
    REQUIRE(st.ok());
  }
  return w;
}

void CheckFullFile(const GgufFile& f, uint32_t alignment) {
  CHECK(f.version() == 3);
  CHECK(f.alignment() == alignment);
  if (alignment == 32) {
    CHECK(f.Find("general.alignment") == nullptr);
  } else {
    REQUIRE(f.GetInt("general.alignment") == int64_t{alignment});
  }
  // Insertion order is kept.
  REQUIRE(f.metadata().size() >= 3);
  CHECK(f.metadata()[0].key == "general.architecture");
  CHECK(f.metadata()[1].key == "t.u8");

  CHECK(f.GetString("general.architecture") == "llama");
  CHECK(f.Find("t.u8")->type == ValueType::kUint8);
  CHECK(f.GetInt("t.u8") == 200);
  CHECK(f.GetInt("t.i8") == -100);
  CHECK(f.GetInt("t.u16") == 60000);
  CHECK(f.GetInt("t.i16") == -30000);
  CHECK(f.GetInt("t.u32") == 4000000000LL);
  CHECK(f.GetInt("t.i32") == -2000000000);
  CHECK(f.GetFloat("t.f32") == 0.25);
  CHECK(f.GetBool("t.bool") == true);
  CHECK(f.GetString("t.string") == "h\xC3\xA9llo \"world\"\n");
  CHECK(f.Find("t.u64")->u == std::numeric_limits<uint64_t>::max());
  CHECK_FALSE(f.GetInt("t.u64").has_value());  // does not fit int64
  CHECK(f.GetInt("t.i64") == std::numeric_limits<int64_t>::min());
  CHECK(f.GetFloat("t.f64") == 3.141592653589793);
  CHECK(f.GetString("t.empty_string") == "");

  CHECK(f.Find("a.u8")->uints == std::vector<uint64_t>{0, 1, 255});
  CHECK(f.GetIntArray("a.i8") == std::vector<int64_t>{-128, 0, 127});
  CHECK(f.GetIntArray("a.u16") == std::vector<int64_t>{65535, 7});
  CHECK(f.GetIntArray("a.i16") == std::vector<int64_t>{-32768, 32767});
  CHECK(f.GetIntArray("a.u32") == std::vector<int64_t>{4294967295LL, 0});
  CHECK(f.GetIntArray("a.i32") == std::vector<int64_t>{-1, 2, -3, 4});
  auto f32s = f.GetFloatArray("a.f32");
  REQUIRE(f32s.has_value());
  CHECK(*f32s == std::vector<double>{1.5, -2.25, static_cast<double>(1e-5f)});
  CHECK(f.Find("a.bool")->elem_type == ValueType::kBool);
  CHECK(f.Find("a.bool")->uints == std::vector<uint64_t>{1, 0, 1});
  const auto* strs = f.GetStringArray("a.string");
  REQUIRE(strs != nullptr);
  CHECK(*strs == std::vector<std::string>{"<s>", "", "\xE2\x96\x81hello", std::string("nul\0byte", 8)});
  CHECK(f.Find("a.u64")->uints == std::vector<uint64_t>{std::numeric_limits<uint64_t>::max(), 1});
  CHECK_FALSE(f.GetIntArray("a.u64").has_value());  // an element does not fit int64
  CHECK(f.GetIntArray("a.i64") ==
        std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
  const Value* f64s = f.Find("a.f64");
  REQUIRE(f64s->floats.size() == 2);
  CHECK(f64s->floats[0] == 1e300);
  CHECK(std::signbit(f64s->floats[1]));
  CHECK(f.Find("a.empty")->array_size() == 0);
  CHECK(f.Find("a.empty")->elem_type == ValueType::kInt32);

  const Value* nested = f.Find("a.nested");
  REQUIRE(nested != nullptr);
  REQUIRE(nested->elem_type == ValueType::kArray);
  REQUIRE(nested->arrays.size() == 4);
  CHECK(nested->arrays[0].ints == std::vector<int64_t>{1, 2, 3});
  CHECK(nested->arrays[1].strings == std::vector<std::string>{"x", "y"});
  REQUIRE(nested->arrays[2].arrays.size() == 1);
  CHECK(nested->arrays[2].arrays[0].elem_type == ValueType::kBool);
  CHECK(nested->arrays[2].arrays[0].uints == std::vector<uint64_t>{1});
  CHECK(nested->arrays[3].elem_type == ValueType::kFloat32);
  CHECK(nested->arrays[3].array_size() == 0);

  REQUIRE(f.tensors().size() == Specs().size());
  uint32_t seed = 1;
  for (size_t k = 0; k < Specs().size(); ++k) {
    const TensorSpec& s = Specs()[k];
    const TensorInfo& t = f.tensors()[k];
    INFO("tensor " << s.name);
    CHECK(t.name == s.name);
    CHECK(t.type == s.type);
    CHECK(t.dims == s.dims);
    CHECK(t.n_bytes == SpecBytes(s));
    CHECK(t.offset % alignment == 0);
    CHECK((f.data_offset() + t.offset) % alignment == 0);
    CHECK(f.FindTensor(s.name) == &t);
    std::vector<uint8_t> expect = Pattern(SpecBytes(s), seed++);
    if (!expect.empty()) CHECK(std::memcmp(f.TensorData(t), expect.data(), expect.size()) == 0);
  }
  CHECK(f.FindTensor("missing") == nullptr);
  CHECK(f.tensors()[0].n_elements == 15);
  CHECK(f.tensors()[0].rows() == 3);
  CHECK(f.tensors()[3].rows() == 3);
}

}  // namespace

TEST_CASE("GGUF round trip keeps every value type, nested arrays and tensors", "[gguf]") {
  const uint32_t alignment = GENERATE(32u, 64u);
  INFO("alignment " << alignment);
  GgufWriter w = MakeFullWriter(alignment);
  std::vector<uint8_t> bytes = w.Serialize();
  auto r = GgufFile::FromBytes(bytes);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CheckFullFile(**r, alignment);
  // The file ends at the last tensor's data: nothing trails it.
  const TensorInfo* last = (*r)->FindTensor("h.q6_k");
  CHECK((*r)->data_offset() + last->offset + last->n_bytes == bytes.size());
}

TEST_CASE("GGUF WriteFile is atomic and Open maps what it wrote", "[gguf]") {
  const uint32_t alignment = GENERATE(32u, 64u);
  std::string dir = lms::test::TempDir();
  std::string path = dir + "/model.gguf";
  { std::ofstream(path) << "old contents"; }  // replaced atomically
  GgufWriter w = MakeFullWriter(alignment);
  REQUIRE(w.WriteFile(path).ok());
  for (const auto& e : fs::directory_iterator(dir)) {
    CHECK(e.path().filename() == "model.gguf");  // no temporary left behind
  }
  auto r = GgufFile::Open(path);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK((*r)->path() == path);
  CHECK((*r)->file_size() == w.Serialize().size());
  CheckFullFile(**r, alignment);
  // mmap returns page-aligned memory, so tensor pointers honour the alignment.
  for (const TensorInfo& t : (*r)->tensors()) {
    CHECK(reinterpret_cast<uintptr_t>((*r)->TensorData(t)) % alignment == 0);
  }
  // Same bytes as Serialize().
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(on_disk == w.Serialize());
}

TEST_CASE("GGUF WriteFile and Open report I/O errors", "[gguf]") {
  GgufWriter w;
  w.SetString("k", "v");
  Status s = w.WriteFile("/nonexistent-dir-lms/x.gguf");
  CHECK(s.code() == StatusCode::kIoError);
  CHECK_THAT(s.message(), Catch::Contains("/nonexistent-dir-lms/x.gguf"));

  auto missing = GgufFile::Open("/nonexistent-dir-lms/x.gguf");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK_THAT(missing.status().message(), Catch::Contains("x.gguf"));

  std::string dir = lms::test::TempDir();
  auto is_dir = GgufFile::Open(dir);
  REQUIRE_FALSE(is_dir.ok());
  CHECK_THAT(is_dir.status().message(), Catch::Contains("not a regular file"));

  std::string empty = dir + "/empty.gguf";
  { std::ofstream out(empty); }
  auto e = GgufFile::Open(empty);
  REQUIRE_FALSE(e.ok());
  CHECK_THAT(e.status().message(), Catch::Contains("empty.gguf") && Catch::Contains("only 0 bytes"));
}

TEST_CASE("GGUF metadata-only file and replaced keys", "[gguf]") {
  GgufWriter w;
  w.SetString("b", "first");
  w.SetUint32("a", 1);
  w.SetString("b", "second");  // replaces in place, keeps position
  auto r = GgufFile::FromBytes(w.Serialize());
  REQUIRE(r.ok());
  REQUIRE((*r)->metadata().size() == 2);
  CHECK((*r)->metadata()[0].key == "b");
  CHECK((*r)->GetString("b") == "second");
  CHECK((*r)->tensors().empty());
  CHECK((*r)->data_offset() <= (*r)->file_size());
}

TEST_CASE("GGUF typed getters reject incompatible types", "[gguf]") {
  GgufWriter w;
  w.SetString("s", "text");
  w.SetInt32("i", -5);
  w.SetFloat32("f", 2.5f);
  w.SetBool("b", false);
  w.SetFloat32Array("fa", {1.0f});
  w.SetInt32Array("ia", {3});
  w.SetStringArray("sa", {"x"});
  auto r = GgufFile::FromBytes(w.Serialize());
  REQUIRE(r.ok());
  const GgufFile& f = **r;
  CHECK_FALSE(f.GetInt("s").has_value());
  CHECK_FALSE(f.GetString("i").has_value());
  CHECK_FALSE(f.GetInt("f").has_value());
  CHECK(f.GetFloat("i") == -5.0);
  CHECK_FALSE(f.GetFloat("b").has_value());
  CHECK(f.GetBool("b") == false);
  CHECK_FALSE(f.GetBool("i").has_value());
  CHECK_FALSE(f.GetIntArray("fa").has_value());
  CHECK(f.GetFloatArray("ia") == std::vector<double>{3.0});
  CHECK(f.GetStringArray("ia") == nullptr);
  CHECK_FALSE(f.GetFloatArray("sa").has_value());
  CHECK_FALSE(f.GetInt("absent").has_value());
  CHECK(f.Find("absent") == nullptr);
}

TEST_CASE("GGUF Value::Describe", "[gguf]") {
  CHECK(Str("llama").Describe() == "\"llama\"");
  CHECK(Scalar(ValueType::kUint32, 0, 7).Describe() == "7");
  CHECK(Scalar(ValueType::kInt8, -3).Describe() == "-3");
  CHECK(Scalar(ValueType::kFloat32, 0, 0, static_cast<float>(1e-5)).Describe() == "1e-05");
  CHECK(Scalar(ValueType::kBool, 0, 1).Describe() == "true");
  Value tokens = Arr(ValueType::kString);
  tokens.strings.assign(49152, "a");
  CHECK(tokens.Describe(0) == "49152 x string");
  CHECK_THAT(tokens.Describe(2), Catch::StartsWith("49152 x string [\"a\", \"a\", ...]"));
  Value ints = Arr(ValueType::kInt32);
  ints.ints = {1, 2};
  CHECK(ints.Describe() == "2 x int32 [1, 2]");
  Value nested = Arr(ValueType::kArray);
  nested.arrays = {ints};
  CHECK(nested.Describe() == "1 x array [2 x int32 [1, 2]]");
  CHECK(Str(std::string(100, 'x')).Describe().find("(100 bytes)") != std::string::npos);
  CHECK(Str("a\nb").Describe() == "\"a\\nb\"");
}

TEST_CASE("GGUF writer rejects inconsistent tensors", "[gguf]") {
  GgufWriter w;
  std::vector<uint8_t> data(64);
  CHECK(w.AddTensor("x", TensorType::kF32, {4}, data.data(), 16).ok());
  Status dup = w.AddTensor("x", TensorType::kF32, {4}, data.data(), 16);
  CHECK_THAT(dup.message(), Catch::Contains("'x'") && Catch::Contains("already"));
  Status size = w.AddTensor("y", TensorType::kF32, {4}, data.data(), 12);
  CHECK_THAT(size.message(), Catch::Contains("'y'") && Catch::Contains("expected 16"));
  Status block = w.AddTensor("q", TensorType::kQ4_0, {16}, data.data(), 9);
  CHECK_THAT(block.message(), Catch::Contains("block size 32"));
  Status dims = w.AddTensor("d", TensorType::kF32, {1, 1, 1, 1, 1}, data.data(), 4);
  CHECK_THAT(dims.message(), Catch::Contains("5 dims"));
  Status neg = w.AddTensor("n", TensorType::kF32, {-1}, data.data(), 4);
  CHECK_THAT(neg.message(), Catch::Contains("negative"));
  CHECK_FALSE(w.AddTensor("", TensorType::kF32, {1}, data.data(), 4).ok());
}

TEST_CASE("GGUF reads the default model", "[gguf][model]") {
  auto path = lms::test::DefaultModelPath();
  if (!path) LMS_SKIP("default model not present (set LMS_TEST_MODEL)");
  auto r = GgufFile::Open(*path);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const GgufFile& f = **r;
  CHECK(f.tensors().size() == 272);
  CHECK(f.GetString("general.architecture") == "llama");
  CHECK(f.GetInt("llama.block_count") == 30);
  CHECK(f.GetInt("llama.embedding_length") == 576);
  const auto* tokens = f.GetStringArray("tokenizer.ggml.tokens");
  REQUIRE(tokens != nullptr);
  CHECK(tokens->size() == 49152);
  CHECK((*tokens)[1] == "<|im_start|>");
  const TensorInfo* emb = f.FindTensor("token_embd.weight");
  REQUIRE(emb != nullptr);
  CHECK(emb->dims == std::vector<int64_t>{576, 49152});
  // Every tensor lies inside the file and they tile the data section without overlap.
  uint64_t total = 0;
  for (const TensorInfo& t : f.tensors()) {
    CHECK(f.data_offset() + t.offset + t.n_bytes <= f.file_size());
    total += t.n_bytes;
  }
  CHECK(total <= f.file_size() - f.data_offset());
}

TEST_CASE("GGUF rewriting the default model reproduces metadata and tensor bytes", "[gguf][model]") {
  auto path = lms::test::DefaultModelPath();
  if (!path) LMS_SKIP("default model not present (set LMS_TEST_MODEL)");
  auto src = GgufFile::Open(*path);
  REQUIRE(src.ok());
  GgufWriter w;
  for (const KeyValue& kv : (*src)->metadata()) w.SetValue(kv.key, kv.value);
  for (const TensorInfo& t : (*src)->tensors()) {
    REQUIRE(w.AddTensor(t.name, t.type, t.dims, (*src)->TensorData(t), t.n_bytes).ok());
  }
  std::string out = lms::test::TempDir() + "/copy.gguf";
  REQUIRE(w.WriteFile(out).ok());
  auto copy = GgufFile::Open(out);
  REQUIRE(copy.ok());
  REQUIRE((*copy)->metadata().size() == (*src)->metadata().size());
  for (size_t k = 0; k < (*src)->metadata().size(); ++k) {
    const KeyValue& a = (*src)->metadata()[k];
    const KeyValue& b = (*copy)->metadata()[k];
    CHECK(a.key == b.key);
    CHECK(a.value.Describe(1u << 20) == b.value.Describe(1u << 20));
  }
  REQUIRE((*copy)->tensors().size() == (*src)->tensors().size());
  for (size_t k = 0; k < (*src)->tensors().size(); ++k) {
    const TensorInfo& a = (*src)->tensors()[k];
    const TensorInfo& b = (*copy)->tensors()[k];
    CHECK(a.name == b.name);
    CHECK(a.dims == b.dims);
    CHECK(a.n_bytes == b.n_bytes);
    CHECK(std::memcmp((*src)->TensorData(a), (*copy)->TensorData(b), a.n_bytes) == 0);
  }
}

TEST_CASE("GGUF reads llama.cpp's vocabulary files", "[gguf]") {
  auto dir = lms::test::SharedDataDir();
  if (!dir || !fs::is_directory(*dir + "/tokenizer")) LMS_SKIP("shared tokenizer data not present");
  int files = 0;
  for (const auto& e : fs::directory_iterator(*dir + "/tokenizer")) {
    if (e.path().extension() != ".gguf") continue;
    ++files;
    INFO(e.path().string());
    auto r = GgufFile::Open(e.path().string());
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    const auto* tokens = (*r)->GetStringArray("tokenizer.ggml.tokens");
    REQUIRE(tokens != nullptr);
    CHECK(tokens->size() > 1000);
    CHECK((*r)->GetString("tokenizer.ggml.model").has_value());
    if (auto types = (*r)->GetIntArray("tokenizer.ggml.token_type")) CHECK(types->size() == tokens->size());
  }
  CHECK(files >= 5);
}
