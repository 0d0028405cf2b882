// One sequence's inference state: its KV cache, the tokens evaluated so far and the logits
// they produced. `run`, `chat`, `perplexity` and `bench` drive a model through it; the serving
// engine uses the forward pass and KV cache directly for many sequences at once.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/kv/kv_cache.h"
#include "core/model/llama_forward.h"
#include "core/model/model.h"

namespace lms {

struct SessionOptions {
  int32_t n_ctx = 4096;     // clamped to the model's training context
  int32_t n_batch = 512;    // tokens per forward call when evaluating a prompt
  TensorType kv_type = TensorType::kF16;
  int32_t kv_block = 16;
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Create(const Model& model, Backend& backend,
                                                 const SessionOptions& options);

  // Evaluates `tokens` after the history, in chunks of n_batch. Afterwards last_logits() holds
  // the logits after the final token. With all_logits, every token's logits are appended to it
  // (n_vocab floats each), as perplexity needs.
  Status Feed(std::span<const int32_t> tokens, std::vector<float>* all_logits = nullptr);
  // The same when only the last token's argmax (the first maximum of its logits) is wanted, as
  // plain greedy decoding needs: the backend picks it (on a GPU only the id comes back, not the
  // logits). last_logits() is empty until the next Feed.
  Result<int32_t> FeedGreedy(std::span<const int32_t> tokens);
  // Keeps the longest cached prefix shared with `tokens` and evaluates the rest (multi-turn chat
  // re-sends the whole conversation; only the new turn is computed). At least the last token is
  // always evaluated so fresh logits exist. Returns how many tokens were evaluated. With argmax,
  // evaluates as FeedGreedy and stores the id there.
  Result<int32_t> FeedReusingPrefix(std::span<const int32_t> tokens, int32_t* argmax = nullptr);
  // Forgets everything from position n on.
  void Rewind(int32_t n);

  std::span<const float> last_logits() const {
    return logits_fresh_ ? std::span<const float>(last_logits_) : std::span<const float>();
  }
  const std::vector<int32_t>& history() const { return history_; }
  int32_t n_past() const { return static_cast<int32_t>(history_.size()); }
  int32_t n_ctx() const { return n_ctx_; }
  const Model& model() const { return model_; }

 private:
  Session(const Model& m, KvCache kv, int32_t n_ctx, int32_t n_batch)
      : model_(m), kv_(std::move(kv)), n_ctx_(n_ctx), n_batch_(n_batch) {}
  // Feed's work: logits into last_logits_ (and all_logits), or with argmax only the last token's
  // argmax.
  Status Eval(std::span<const int32_t> tokens, std::vector<float>* all_logits, int32_t* argmax);

  const Model& model_;
  KvCache kv_;
  KvSequence seq_;
  std::unique_ptr<LlamaForward> forward_;
  int32_t n_ctx_;
  int32_t n_batch_;
  std::vector<int32_t> history_;
  std::vector<float> last_logits_;
  bool logits_fresh_ = true;  // false after FeedGreedy
  std::vector<float> chunk_logits_;
  BatchLayout batch_;
};

}  // namespace lms
