#include "core/model/model_config.h"

#include <fmt/format.h>

namespace lms {
namespace {

bool IsSupportedArchitecture(const std::string& a) {
  return a == "llama" || a == "qwen2" || a == "mistral" || a == "granite" || a == "smollm3";
}

}  // namespace

std::string ModelConfig::Summary() const {
  return fmt::format("{} {} layers, d_model {}, d_ff {}, heads {}/{} (head dim {}), vocab {}, "
                     "context {}, rope theta {}{}", architecture, n_layers, d_model, d_ff,
                     n_heads, n_kv_heads, head_dim, n_vocab, n_ctx_train, rope_theta,
                     rope_neox ? " (neox)" : "");
}

Result<ModelConfig> ReadModelConfig(const gguf::GgufFile& f) {
  ModelConfig c;
  auto arch = f.GetString("general.architecture");
  if (!arch) return Status::InvalidArgument("missing general.architecture");
  c.architecture = *arch;
  if (!IsSupportedArchitecture(c.architecture)) {
    return Status::Unsupported("architecture '" + c.architecture +
                               "' is not supported (supported: llama, qwen2, mistral, granite)");
  }
  c.name = f.GetString("general.name").value_or("");
  const std::string p = c.architecture + ".";
  auto need_int = [&](const std::string& key, int32_t& out) -> Status {
    auto v = f.GetInt(p + key);
    if (!v) return Status::InvalidArgument("missing or non-integer metadata '" + p + key + "'");
    if (*v <= 0 || *v > (1 << 24)) {
      return Status::InvalidArgument(fmt::format("metadata '{}{}' = {} is out of range", p, key, *v));
    }
    out = static_cast<int32_t>(*v);
    return Status::Ok();
  };
  LMS_RETURN_IF_ERROR(need_int("block_count", c.n_layers));
  LMS_RETURN_IF_ERROR(need_int("embedding_length", c.d_model));
  LMS_RETURN_IF_ERROR(need_int("feed_forward_length", c.d_ff));
  LMS_RETURN_IF_ERROR(need_int("attention.head_count", c.n_heads));
  c.n_kv_heads = c.n_heads;
  if (f.Find(p + "attention.head_count_kv")) LMS_RETURN_IF_ERROR(need_int("attention.head_count_kv", c.n_kv_heads));
  if (c.n_heads % c.n_kv_heads != 0) {
    return Status::InvalidArgument(fmt::format("head_count {} is not a multiple of head_count_kv {}",
                                               c.n_heads, c.n_kv_heads));
  }
  c.head_dim = c.d_model / c.n_heads;
  if (f.Find(p + "attention.key_length")) LMS_RETURN_IF_ERROR(need_int("attention.key_length", c.head_dim));
  c.rope_dims = c.head_dim;
  if (f.Find(p + "rope.dimension_count")) LMS_RETURN_IF_ERROR(need_int("rope.dimension_count", c.rope_dims));
  if (c.rope_dims > c.head_dim || c.rope_dims % 2 != 0) {
    return Status::InvalidArgument(fmt::format("rope.dimension_count {} does not fit head dim {}",
                                               c.rope_dims, c.head_dim));
  }
  c.n_ctx_train = static_cast<int32_t>(f.GetInt(p + "context_length").value_or(2048));
  c.rope_theta = static_cast<float>(f.GetFloat(p + "rope.freq_base").value_or(10000.0));
  if (auto s = f.GetFloat(p + "rope.scale_linear")) c.rope_freq_scale = static_cast<float>(1.0 / *s);
  c.rms_eps = static_cast<float>(f.GetFloat(p + "attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_neox = (c.architecture == "qwen2");
  c.qkv_bias = (c.architecture == "qwen2");
  if (auto v = f.GetInt(p + "vocab_size")) {
    c.n_vocab = static_cast<int32_t>(*v);
  } else if (auto toks = f.GetStringArray("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<int32_t>(toks->size());
  }
  if (const auto* emb = f.FindTensor("token_embd.weight")) {
    if (emb->dims.size() != 2 || emb->dims[0] != c.d_model) {
      return Status::InvalidArgument("token_embd.weight does not have shape [d_model, vocab]");
    }
    c.n_vocab = static_cast<int32_t>(emb->dims[1]);
  } else {
    return Status::InvalidArgument("missing tensor token_embd.weight");
  }
  c.tied_output = f.FindTensor("output.weight") == nullptr;
  return c;
}

}  // namespace lms
