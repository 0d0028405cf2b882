// The Llama-family forward pass (RMSNorm, RoPE, GQA attention over the paged KV cache, SwiGLU),
// written once against the Backend interface. One call runs one batch of tokens that may belong
// to several sequences and mix prompt chunks with decode steps.
#pragma once

#include <memory>

#include "core/backend/backend.h"
#include "core/kv/kv_cache.h"
#include "core/model/model_config.h"
#include "core/model/weights.h"

namespace lms {

class LlamaForward {
 public:
  // Plans every activation buffer up front for batches of up to max_batch_tokens tokens.
  static Result<std::unique_ptr<LlamaForward>> Create(const ModelConfig& config,
                                                      const ModelWeights& weights,
                                                      Backend& backend, int32_t max_batch_tokens);

  // REQUIRES: batch.n_tokens() <= max_batch_tokens(); every slot and block table was reserved
  // in `kv`. Writes batch.logit_rows.size() rows of n_vocab logits to `logits` (host memory).
  Status Forward(const BatchLayout& batch, KvCache& kv, float* logits);
  // The same forward, but only each logit row's greedy choice (Backend::ArgMaxRows) reaches the
  // host: batch.logit_rows.size() token ids to `ids`.
  Status ForwardGreedy(const BatchLayout& batch, KvCache& kv, int32_t* ids);

  int32_t max_batch_tokens() const { return max_tokens_; }
  const ModelConfig& config() const { return config_; }

 private:
  // Every layer and the head: the logit rows' logits in logits_ (device memory). Returns the
  // number of rows (0: none asked for).
  Result<int64_t> Run(const BatchLayout& batch, KvCache& kv);

  LlamaForward(const ModelConfig& c, const ModelWeights& w, Backend& b, int32_t max_tokens)
      : config_(c), weights_(w), backend_(b), max_tokens_(max_tokens) {}

  ModelConfig config_;
  const ModelWeights& weights_;
  Backend& backend_;
  int32_t max_tokens_;
  // Activations, each with max_tokens_ rows.
  TensorView x_, xn_, q_, k_, v_, attn_, proj_, gate_, up_, hidden_, last_, last_norm_, logits_;
};

}  // namespace lms
