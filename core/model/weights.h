// The tensors of a Llama-family model, as views the backend can compute on.
#pragma once

#include <vector>

#include "core/backend/backend.h"
#include "core/model/gguf.h"
#include "core/model/model_config.h"

namespace lms {

struct LayerWeights {
  TensorView attn_norm;              // [d_model] f32
  TensorView wq, wk, wv, wo;         // [n_heads*hd, d], [n_kv*hd, d], [n_kv*hd, d], [d, n_heads*hd]
  TensorView bq, bk, bv;             // optional biases (qwen2); data == nullptr when absent
  TensorView ffn_norm;               // [d_model] f32
  TensorView w_gate, w_up, w_down;   // [d_ff, d], [d_ff, d], [d, d_ff]
};

struct ModelWeights {
  TensorView token_embd;             // [n_vocab, d_model]
  TensorView output_norm;            // [d_model]
  TensorView output;                 // [n_vocab, d_model]; the embedding when tied
  std::vector<LayerWeights> layers;
};

// Finds every tensor the config needs, checks its shape and type, and hands it to the backend.
Result<ModelWeights> LoadWeights(const gguf::GgufFile& file, const ModelConfig& config,
                                 Backend& backend);

}  // namespace lms
