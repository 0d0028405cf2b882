// Writes a small seed corpus for fuzz_gguf: valid GGUF files made by GgufWriter, each a few
// hundred bytes, together covering every value type, nested arrays, several tensor types,
// alignments 32/64, a metadata-only file and a version-2 header.
// Usage: gguf_fuzz_seeds <output-dir>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/model/gguf.h"

using namespace lms;
using namespace lms::gguf;

namespace {

Value Array(ValueType elem) {
  Value v;
  v.type = ValueType::kArray;
  v.elem_type = elem;
  return v;
}

Value Scalar(ValueType t, int64_t i, uint64_t u, double f) {
  Value v;
  v.type = t;
  v.i = i;
  v.u = u;
  v.f = f;
  return v;
}

void AddTensor(GgufWriter& w, const std::string& name, TensorType type, std::vector<int64_t> dims) {
  int64_t rows = 1;
  for (size_t k = 1; k < dims.size(); ++k) rows *= dims[k];
  std::vector<uint8_t> data(RowBytes(type, dims[0]) * static_cast<size_t>(rows));
  for (size_t k = 0; k < data.size(); ++k) data[k] = static_cast<uint8_t>(k * 7 + 1);
  Status s = w.AddTensor(name, type, std::move(dims), data.data(), data.size());
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::exit(1);
  }
}

bool Save(const std::filesystem::path& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-dir>\n", argv[0]);
    return 2;
  }
  std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  bool ok = true;

  {  // every scalar type
    GgufWriter w;
    w.SetValue("s.u8", Scalar(ValueType::kUint8, 0, 7, 0));
    w.SetValue("s.i8", Scalar(ValueType::kInt8, -7, 0, 0));
    w.SetValue("s.u16", Scalar(ValueType::kUint16, 0, 700, 0));
    w.SetValue("s.i16", Scalar(ValueType::kInt16, -700, 0, 0));
    w.SetUint32("s.u32", 70000);
    w.SetInt32("s.i32", -70000);
    w.SetFloat32("s.f32", 0.5f);
    w.SetBool("s.bool", true);
    w.SetString("s.str", "llama");
    w.SetUint64("s.u64", 1ull << 40);
    w.SetValue("s.i64", Scalar(ValueType::kInt64, -(1ll << 40), 0, 0));
    w.SetValue("s.f64", Scalar(ValueType::kFloat64, 0, 0, 1e-9));
    ok &= Save(dir, "scalars.gguf", w.Serialize());
  }
  {  // arrays, nested arrays
    GgufWriter w;
    w.SetStringArray("tokenizer.ggml.tokens", {"<s>", "</s>", "a", "b", "ab"});
    w.SetFloat32Array("tokenizer.ggml.scores", {0, 0, -1, -2, -3});
    w.SetInt32Array("tokenizer.ggml.token_type", {3, 3, 1, 1, 1});
    w.SetStringArray("tokenizer.ggml.merges", {"a b"});
    Value bools = Array(ValueType::kBool);
    bools.uints = {0, 1};
    w.SetValue("a.bool", bools);
    Value u64s = Array(ValueType::kUint64);
    u64s.uints = {1, 2};
    w.SetValue("a.u64", u64s);
    Value inner = Array(ValueType::kInt16);
    inner.ints = {1, -1};
    Value mid = Array(ValueType::kArray);
    mid.arrays = {inner, Array(ValueType::kString)};
    Value outer = Array(ValueType::kArray);
    outer.arrays = {mid};
    w.SetValue("a.nested", outer);
    ok &= Save(dir, "arrays.gguf", w.Serialize());
  }
  {  // a tiny model: several tensor types, alignment 32
    GgufWriter w;
    w.SetString("general.architecture", "llama");
    w.SetUint32("llama.block_count", 1);
    AddTensor(w, "token_embd.weight", TensorType::kF32, {4, 3});
    AddTensor(w, "blk.0.attn_q.weight", TensorType::kQ4_0, {32, 2});
    AddTensor(w, "blk.0.ffn_up.weight", TensorType::kQ8_0, {32});
    AddTensor(w, "output_norm.weight", TensorType::kF16, {4});
    ok &= Save(dir, "model32.gguf", w.Serialize());
  }
  {  // alignment 64, K-quants, an empty tensor
    GgufWriter w;
    w.SetAlignment(64);
    w.SetString("general.architecture", "llama");
    AddTensor(w, "a", TensorType::kQ4_K, {256});
    AddTensor(w, "empty", TensorType::kF32, {0, 2});
    AddTensor(w, "b", TensorType::kI32, {3, 1, 1, 2});
    ok &= Save(dir, "model64.gguf", w.Serialize());
  }
  {  // version 2 header (same layout as 3)
    GgufWriter w;
    w.SetString("general.name", "v2");
    AddTensor(w, "t", TensorType::kF32, {2});
    std::vector<uint8_t> bytes = w.Serialize();
    bytes[4] = 2;
    ok &= Save(dir, "version2.gguf", bytes);
  }
  {  // empty file body: no metadata, no tensors
    GgufWriter w;
    ok &= Save(dir, "empty.gguf", w.Serialize());
  }
  if (!ok) {
    std::fprintf(stderr, "failed writing seeds to %s\n", dir.c_str());
    return 1;
  }
  return 0;
}
