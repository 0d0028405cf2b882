// Hyper-parameters of a Llama-family model, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

#include "core/model/gguf.h"
#include "core/util/status.h"

namespace lms {

struct ModelConfig {
  std::string architecture;   // general.architecture: llama, qwen2, mistral, …
  std::string name;           // general.name
  int32_t n_layers = 0;
  int32_t d_model = 0;        // embedding length
  int32_t d_ff = 0;           // feed-forward length
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t rope_dims = 0;
  float rope_theta = 10000.0f;
  float rope_freq_scale = 1.0f;
  bool rope_neox = false;     // qwen2 and friends rotate NeoX-style
  float rms_eps = 1e-5f;
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;
  bool tied_output = false;   // no output.weight: the token embedding doubles as the head
  bool qkv_bias = false;      // qwen2 has biases on q, k and v

  std::string Summary() const;  // one line: "llama 30 layers d=576 ff=1536 heads 9/3 …"
};

// Reads and checks the hyper-parameters of a supported architecture.
Result<ModelConfig> ReadModelConfig(const gguf::GgufFile& file);

}  // namespace lms
