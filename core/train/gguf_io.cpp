#include "core/train/gguf_io.h"

#include <fmt/format.h>

#include "core/model/model_config.h"
#include "core/tensor/fp16.h"
#include "core/tensor/quant.h"

namespace lms::train {

Result<ImportedModel> ImportGguf(const std::string& path, int32_t seq_len) {
  LMS_ASSIGN_OR_RETURN(auto file, gguf::GgufFile::Open(path));
  LMS_ASSIGN_OR_RETURN(ModelConfig c, ReadModelConfig(*file));
  auto ctx = [&](Status s) { return s.WithContext("importing '" + path + "'"); };
  if (c.qkv_bias) return ctx(Status::Unsupported("models with q/k/v biases (" + c.architecture + ") cannot be trained yet"));
  if (c.rope_dims != c.head_dim) return ctx(Status::Unsupported("partial rotary dimensions cannot be trained yet"));
  if (c.rope_freq_scale != 1.0f) return ctx(Status::Unsupported("scaled rotary positions cannot be trained yet"));
  ImportedModel m;
  m.name = c.name;
  m.context_length = c.n_ctx_train;
  ModelShape& s = m.shape;
  s.n_layers = c.n_layers;
  s.d_model = c.d_model;
  s.n_heads = c.n_heads;
  s.n_kv_heads = c.n_kv_heads;
  s.d_ff = c.d_ff;
  s.n_vocab = c.n_vocab;
  s.seq_len = seq_len;
  s.rope_theta = c.rope_theta;
  s.rope_neox = c.rope_neox;
  s.rms_eps = c.rms_eps;
  s.tied = c.tied_output;
  if (s.d_model != s.n_heads * s.head_dim() || c.head_dim != s.head_dim()) {
    return ctx(Status::Unsupported("head dimension other than d_model / heads"));
  }
  LMS_RETURN_IF_ERROR(ctx(s.Validate()));
  const ParamLayout layout = ParamLayout::For(s);
  m.params.assign(static_cast<size_t>(layout.total), 0.0f);
  for (const ParamTensor* t : layout.All()) {
    const gguf::TensorInfo* ti = file->FindTensor(t->name);
    if (!ti) return ctx(Status::InvalidArgument("missing tensor '" + t->name + "'"));
    const std::vector<int64_t> want = t->matrix ? std::vector<int64_t>{t->cols, t->rows} : std::vector<int64_t>{t->cols};
    if (ti->dims != want) return ctx(Status::InvalidArgument("tensor '" + t->name + "' has an unexpected shape"));
    if (!CanDequantize(ti->type)) {
      return ctx(Status::Unsupported(fmt::format("tensor '{}' has type {}, which cannot be dequantized",
                                                 t->name, TensorTypeName(ti->type))));
    }
    const uint8_t* src = file->TensorData(*ti);
    const size_t row_bytes = RowBytes(ti->type, t->cols);
    for (int64_t r = 0; r < t->rows; ++r) {
      DequantizeRow(ti->type, src + r * row_bytes, m.params.data() + t->offset + r * t->cols, t->cols);
    }
  }
  for (const auto& kv : file->metadata()) {
    if (kv.key.rfind("tokenizer.", 0) == 0) m.tokenizer_kv.push_back(kv);
  }
  return m;
}

std::vector<gguf::KeyValue> VocabMetadata(const VocabData& v, const std::string& chat_template) {
  std::vector<gguf::KeyValue> out;
  auto str = [&](const std::string& k, const std::string& s) {
    gguf::Value val;
    val.type = gguf::ValueType::kString;
    val.str = s;
    out.push_back({k, val});
  };
  auto u32 = [&](const std::string& k, int64_t x) {
    gguf::Value val;
    val.type = gguf::ValueType::kUint32;
    val.u = static_cast<uint64_t>(x);
    out.push_back({k, val});
  };
  auto flag = [&](const std::string& k, bool b) {
    gguf::Value val;
    val.type = gguf::ValueType::kBool;
    val.u = b ? 1 : 0;
    out.push_back({k, val});
  };
  str("tokenizer.ggml.model", v.model);
  str("tokenizer.ggml.pre", v.pre.empty() ? "default" : v.pre);
  gguf::Value toks;
  toks.type = gguf::ValueType::kArray;
  toks.elem_type = gguf::ValueType::kString;
  toks.strings = v.tokens;
  out.push_back({"tokenizer.ggml.tokens", toks});
  gguf::Value types;
  types.type = gguf::ValueType::kArray;
  types.elem_type = gguf::ValueType::kInt32;
  types.ints.assign(v.token_types.begin(), v.token_types.end());
  out.push_back({"tokenizer.ggml.token_type", types});
  gguf::Value merges;
  merges.type = gguf::ValueType::kArray;
  merges.elem_type = gguf::ValueType::kString;
  merges.strings = v.merges;
  out.push_back({"tokenizer.ggml.merges", merges});
  if (v.bos_id && *v.bos_id >= 0) u32("tokenizer.ggml.bos_token_id", *v.bos_id);
  if (v.eos_id && *v.eos_id >= 0) u32("tokenizer.ggml.eos_token_id", *v.eos_id);
  if (v.add_bos) flag("tokenizer.ggml.add_bos_token", *v.add_bos);
  if (v.add_eos) flag("tokenizer.ggml.add_eos_token", *v.add_eos);
  if (!chat_template.empty()) str("tokenizer.chat_template", chat_template);
  return out;
}

Status ExportGguf(const std::string& path, const ModelShape& s, const std::vector<float>& params,
                  const std::vector<gguf::KeyValue>& tokenizer_kv, const ExportOptions& opt) {
  LMS_RETURN_IF_ERROR(s.Validate());
  if (s.rope_neox) return Status::Unsupported("export of NeoX-rotary models (qwen2 layout) is not supported");
  const ParamLayout layout = ParamLayout::For(s);
  if (static_cast<int64_t>(params.size()) != layout.total) {
    return Status::InvalidArgument("parameter vector does not match the model shape");
  }
  if (!CanQuantize(opt.matrix_type)) {
    return Status::Unsupported(fmt::format("cannot write tensors of type {}", TensorTypeName(opt.matrix_type)));
  }
  gguf::GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("general.name", opt.name);
  w.SetUint32("llama.block_count", s.n_layers);
  w.SetUint32("llama.context_length", opt.context_length > 0 ? opt.context_length : s.seq_len);
  w.SetUint32("llama.embedding_length", s.d_model);
  w.SetUint32("llama.feed_forward_length", s.d_ff);
  w.SetUint32("llama.attention.head_count", s.n_heads);
  w.SetUint32("llama.attention.head_count_kv", s.n_kv_heads);
  w.SetUint32("llama.rope.dimension_count", s.head_dim());
  w.SetFloat32("llama.rope.freq_base", s.rope_theta);
  w.SetFloat32("llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  w.SetUint32("llama.vocab_size", s.n_vocab);
  for (const auto& kv : tokenizer_kv) w.SetValue(kv.key, kv.value);
  for (const ParamTensor* t : layout.All()) {
    const float* src = params.data() + t->offset;
    if (!t->matrix) {
      LMS_RETURN_IF_ERROR(w.AddTensor(t->name, TensorType::kF32, {t->cols}, src, t->size() * sizeof(float)));
      continue;
    }
    TensorType type = opt.matrix_type;
    const bool four_bit = type == TensorType::kQ4_0 || type == TensorType::kQ4_1 || type == TensorType::kQ4_K ||
                          type == TensorType::kQ6_K;
    if (four_bit && t->name == "token_embd.weight") type = TensorType::kQ8_0;
    if (t->cols % TypeInfo(type).block_elems != 0) type = TensorType::kF32;  // rows too short for the blocks
    const size_t rb = RowBytes(type, t->cols);
    std::vector<uint8_t> bytes(rb * static_cast<size_t>(t->rows));
    for (int64_t r = 0; r < t->rows; ++r) {
      LMS_RETURN_IF_ERROR(QuantizeRow(type, src + r * t->cols, bytes.data() + r * rb, t->cols)
                              .WithContext("tensor '" + t->name + "'"));
    }
    LMS_RETURN_IF_ERROR(w.AddTensor(t->name, type, {t->cols, t->rows}, bytes.data(), bytes.size()));
  }
  return w.WriteFile(path);
}

}  // namespace lms::train
