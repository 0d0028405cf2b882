// The serving engine: many requests on one model at once. Each step the scheduler picks work
// within a token budget, one forward pass runs the whole batch (prompt chunks and decode
// tokens together, weights read once), and every sequence that reached its end samples its
// next token with its own parameters, which streams to the request's channel.
//
// EngineCore is single-threaded (tests drive Step() directly); Engine runs an EngineCore on
// its own thread, the one thread that owns scheduler, KV cache and model, and takes requests
// from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/kv/block_manager.h"
#include "core/kv/kv_cache.h"
#include "core/model/generate.h"
#include "core/model/llama_forward.h"
#include "core/model/model.h"
#include "core/serve/metrics.h"
#include "core/serve/request.h"
#include "core/serve/scheduler.h"

namespace lms::serve {

struct EngineOptions {
  int32_t block_size = 16;       // tokens per KV block
  int64_t kv_bytes = 0;          // KV cache memory; 0: enough for max_running full contexts (capped)
  int32_t n_ctx = 0;             // tokens per sequence at most; 0: the model's training context
  int32_t max_running = 16;
  int32_t token_budget = 256;    // tokens per forward pass
  int32_t max_waiting = 256;     // queued requests before Submit says the queue is full
  bool prefix_caching = true;
  TensorType kv_type = TensorType::kF16;
};

class EngineCore {
 public:
  // `model` and `backend` must outlive the engine.
  static Result<std::unique_ptr<EngineCore>> Create(const Model& model, Backend& backend,
                                                    const EngineOptions& options);

  // Checks a request against the model and limits: InvalidArgument (bad parameter or token),
  // OutOfRange (the prompt does not fit the context). Thread-safe.
  Status Check(const Request& r) const;
  // Queues a checked request; its events go to `channel`.
  Status Add(Request r, std::shared_ptr<RequestChannel> channel);
  // One scheduling round, forward pass and sampling. Cancelled requests are dropped first.
  Status Step();
  bool HasWork() const { return !groups_.empty(); }
  // Ends every request with "cancelled" (shutdown).
  void CancelAll();
  size_t n_waiting() const { return scheduler_->n_waiting(); }

  EngineMetrics Metrics() const;
  int32_t max_seq_len() const { return max_seq_len_; }
  const BlockManager& blocks() const { return *blocks_; }
  const Scheduler::Output& last_schedule() const { return last_; }
  const Model& model() const { return model_; }

 private:
  struct Group;
  struct Seq {  // generation state of one choice; scheduling state lives in the scheduler
    int64_t id = 0;
    int32_t index = 0;
    Group* group = nullptr;
    int32_t prompt_len = 0;
    int32_t generated = 0;
    bool forked = false;  // for index 0 of an n > 1 request: its choices exist
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<StreamDecoder> decoder;
    std::unique_ptr<StopStringMatcher> stops;
    double first_token_s = -1;
  };
  struct Group {
    uint64_t order = 0;
    Request request;
    std::shared_ptr<RequestChannel> channel;
    std::vector<int64_t> seq_ids;  // live choices
    double arrival_s = 0;
    bool first_token_seen = false;
    int32_t cached_prompt_tokens = -1;
    bool cancelled = false;  // some choice ended "cancelled"
  };

  EngineCore(const Model& m, Backend& b) : model_(m), backend_(b) {}
  void SampleAndEmit(Seq& seq, std::span<const float> logits);
  // Emits `tok` for seq (logits: its row, for logprobs; empty when none are asked for).
  void Emit(Seq& seq, int32_t tok, std::span<const float> logits);
  // Whether every sequence sampled this step takes its row's first maximum and asks for no
  // logprobs, so the forward may return token ids instead of logits.
  bool IdsSuffice(const std::vector<int64_t>& sampling) const;
  void ForkChoices(Seq& parent);
  // Sends the choice's final event and forgets it (`seq` is destroyed).
  void Finish(Seq& seq, const std::string& reason, const std::string& error = {});
  void Finish(Seq& seq, StreamEvent final_event);
  void DropCancelled();
  double Now() const;

  const Model& model_;
  Backend& backend_;
  EngineOptions options_;
  int32_t max_seq_len_ = 0;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<BlockManager> blocks_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<LlamaForward> forward_;
  std::unordered_map<int64_t, std::unique_ptr<Seq>> seqs_;
  std::unordered_map<uint64_t, std::unique_ptr<Group>> groups_;
  int64_t next_seq_id_ = 1;
  uint64_t next_order_ = 1;
  BatchLayout batch_;
  std::vector<float> logits_;
  std::vector<int32_t> ids_;
  Scheduler::Output last_;
  EngineMetrics metrics_;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Start(const Model& model, Backend& backend,
                                               const EngineOptions& options);
  ~Engine();  // stops the thread; unfinished requests get a "cancelled" final event

  // Thread-safe. The channel streams the request's events; ResourceExhausted when the queue
  // is full, InvalidArgument / OutOfRange when the request cannot run.
  Result<std::shared_ptr<RequestChannel>> Submit(Request r);
  EngineMetrics Metrics() const;  // the snapshot after the latest step; thread-safe
  int32_t max_seq_len() const { return core_->max_seq_len(); }
  const Model& model() const { return core_->model(); }

 private:
  explicit Engine(std::unique_ptr<EngineCore> core) : core_(std::move(core)) {}
  void Loop();

  std::unique_ptr<EngineCore> core_;  // touched only by the engine thread after Start
  int32_t max_waiting_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<Request, std::shared_ptr<RequestChannel>>> pending_;  // GUARDED_BY(mu_)
  EngineMetrics snapshot_;                                                    // GUARDED_BY(mu_)
  bool stop_ = false;               // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace lms::serve
