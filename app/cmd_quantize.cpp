// lmstation quantize IN OUT TYPE — rewrite a GGUF model with its matrices in another type.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "app/commands.h"
#include "app/model_cache.h"
#include "core/model/gguf.h"
#include "core/tensor/quant.h"
#include "core/util/log.h"

namespace lms::app {
namespace {

// llama.cpp's "file type" numbers for general.file_type.
int FileTypeOf(TensorType t) {
  switch (t) {
    case TensorType::kF32: return 0;
    case TensorType::kF16: return 1;
    case TensorType::kQ4_0: return 2;
    case TensorType::kQ4_1: return 3;
    case TensorType::kQ8_0: return 7;
    case TensorType::kQ4_K: return 15;
    case TensorType::kQ6_K: return 18;
    case TensorType::kBF16: return 32;
    default: return -1;
  }
}

// Matrices go to the target type; vectors (norms, biases) stay F32. A tied embedding doubles
// as the output head, which is sensitive, so 4-bit targets keep it at Q8_0 as llama.cpp does.
TensorType ChooseType(const gguf::TensorInfo& t, TensorType target, bool tied) {
  if (t.dims.size() < 2) return t.type == TensorType::kF16 || t.type == TensorType::kBF16 ? TensorType::kF32 : t.type;
  TensorType out = target;
  const bool four_bit = target == TensorType::kQ4_0 || target == TensorType::kQ4_1 || target == TensorType::kQ4_K;
  if ((t.name == "output.weight" || (tied && t.name == "token_embd.weight")) && four_bit) out = TensorType::kQ8_0;
  if (t.dims[0] % TypeInfo(out).block_elems != 0) out = TensorType::kF16;
  return out;
}

}  // namespace

CommandFn AddQuantizeCommand(CLI::App& cli) {
  struct Opts {
    std::string in, out, type;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("quantize", "Convert a model's weights to another type (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, F16, BF16, F32)");
  sub->add_option("input", o->in, "Input GGUF file or known model name")->required();
  sub->add_option("output", o->out, "Output GGUF file")->required();
  sub->add_option("type", o->type, "Target type")->required();
  return [o]() {
    auto target = ParseTensorType(o->type);
    if (!target || !CanQuantize(*target) || FileTypeOf(*target) < 0) {
      return Fail(Status::InvalidArgument(fmt::format("cannot quantize to '{}' (choose Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, F16, BF16 or F32)", o->type)));
    }
    auto path = ResolveModel(o->in);
    if (!path.ok()) return Fail(path.status());
    auto in = gguf::GgufFile::Open(*path);
    if (!in.ok()) return Fail(in.status().WithContext(*path));
    const gguf::GgufFile& f = **in;
    gguf::GgufWriter w;
    for (const auto& kv : f.metadata()) {
      if (kv.key == "general.file_type" || kv.key == "general.alignment") continue;
      w.SetValue(kv.key, kv.value);
    }
    w.SetUint32("general.file_type", static_cast<uint32_t>(FileTypeOf(*target)));
    const bool tied = f.FindTensor("output.weight") == nullptr;
    auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, int> counts;
    std::vector<float> row;
    std::vector<uint8_t> out;
    for (const auto& t : f.tensors()) {
      const TensorType dst = ChooseType(t, *target, tied);
      counts[std::string(TensorTypeName(dst))]++;
      const uint8_t* src = f.TensorData(t);
      if (dst == t.type) {
        if (Status s = w.AddTensor(t.name, dst, t.dims, src, t.n_bytes); !s.ok()) return Fail(s);
        continue;
      }
      if (!CanDequantize(t.type)) {
        return Fail(Status::Unsupported(fmt::format("tensor '{}' has type {}, which cannot be converted",
                                                    t.name, TensorTypeName(t.type))));
      }
      const int64_t cols = t.dims[0], rows = t.rows();
      const size_t src_row = RowBytes(t.type, cols), dst_row = RowBytes(dst, cols);
      row.resize(cols);
      out.resize(dst_row * rows);
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRow(t.type, src + r * src_row, row.data(), cols);
        if (Status s = QuantizeRow(dst, row.data(), out.data() + r * dst_row, cols); !s.ok()) {
          return Fail(s.WithContext("tensor '" + t.name + "'"));
        }
      }
      if (Status s = w.AddTensor(t.name, dst, t.dims, out.data(), out.size()); !s.ok()) return Fail(s);
    }
    if (Status s = w.WriteFile(o->out); !s.ok()) return Fail(s);
    std::string summary;
    for (const auto& [name, n] : counts) summary += fmt::format("{}{} x{}", summary.empty() ? "" : ", ", name, n);
    LogInfo(fmt::format("wrote {} ({} tensors: {}) in {:.1f} s", o->out, f.tensors().size(), summary,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
    return 0;
  };
}

}  // namespace lms::app
