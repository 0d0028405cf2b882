#include "core/serve/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/util/log.h"

namespace lms::serve {
namespace {

constexpr uint64_t kChoiceBits = 8;  // order = group order << 8 | choice index (n <= 16)

}  // namespace

Result<std::unique_ptr<EngineCore>> EngineCore::Create(const Model& model, Backend& backend,
                                                       const EngineOptions& o) {
  const ModelConfig& c = model.config();
  if (o.block_size < 1 || o.block_size > 256) {
    return Status::InvalidArgument(fmt::format("KV block size {} must be in [1, 256]", o.block_size));
  }
  if (o.max_running < 1) return Status::InvalidArgument("max running sequences must be at least 1");
  if (o.token_budget < 1) return Status::InvalidArgument("token budget must be at least 1");
  std::unique_ptr<EngineCore> e(new EngineCore(model, backend));
  e->options_ = o;
  int32_t n_ctx = o.n_ctx > 0 ? std::min(o.n_ctx, c.n_ctx_train) : std::min(c.n_ctx_train, 4096);
  if (n_ctx <= 0) n_ctx = 4096;
  if (o.kv_type != TensorType::kF16 && o.kv_type != TensorType::kF32 && o.kv_type != TensorType::kQ8_0) {
    return Status::Unsupported("KV cache type must be f16, q8_0 or f32");
  }
  if (o.kv_type == TensorType::kQ8_0 && c.head_dim % 32 != 0) {
    return Status::Unsupported(fmt::format("a q8_0 KV cache needs a head size divisible by 32 (this model's is {})", c.head_dim));
  }
  // K and V rows of every layer for block_size tokens.
  const int64_t block_bytes = int64_t{c.n_layers} * 2 * o.block_size *
                              static_cast<int64_t>(RowBytes(o.kv_type, int64_t{c.n_kv_heads} * c.head_dim));
  int64_t n_blocks;
  if (o.kv_bytes > 0) {
    n_blocks = o.kv_bytes / block_bytes;
  } else {
    // Room for every running sequence at full context, capped at 1 GiB.
    const int64_t want = int64_t{o.max_running} * ((n_ctx + o.block_size - 1) / o.block_size);
    n_blocks = std::min<int64_t>(want, (int64_t{1} << 30) / block_bytes);
  }
  if (n_blocks < 2) {
    return Status::InvalidArgument(fmt::format(
        "KV memory {} bytes holds fewer than 2 blocks of {} bytes", o.kv_bytes, block_bytes));
  }
  // A sequence must fit the cache on its own, so preemption can always make room for it.
  e->max_seq_len_ = static_cast<int32_t>(std::min<int64_t>(n_ctx, n_blocks * o.block_size));
  KvCacheOptions kvo;
  kvo.block_size = o.block_size;
  kvo.n_blocks = n_blocks;
  kvo.type = o.kv_type;
  LMS_ASSIGN_OR_RETURN(KvCache kv, KvCache::Create(backend, c, kvo));
  e->kv_ = std::make_unique<KvCache>(std::move(kv));
  e->blocks_ = std::make_unique<BlockManager>(n_blocks, o.block_size, o.prefix_caching);
  KvCache* cache = e->kv_.get();
  e->scheduler_ = std::make_unique<Scheduler>(
      *e->blocks_, SchedulerOptions{o.token_budget, o.max_running},
      [cache](int32_t src, int32_t dst) { cache->CopyBlock(src, dst); });
  LMS_ASSIGN_OR_RETURN(e->forward_, LlamaForward::Create(c, model.weights(), backend, o.token_budget));
  e->metrics_.kv_blocks_total = n_blocks;
  LogInfo(fmt::format("serve engine: {} KV blocks of {} tokens ({:.1f} MiB), {} tokens per sequence, "
                      "{} running at most, {} tokens per step",
                      n_blocks, o.block_size, n_blocks * block_bytes / 1048576.0, e->max_seq_len_,
                      o.max_running, o.token_budget));
  return e;
}

double EngineCore::Now() const {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Status EngineCore::Check(const Request& r) const {
  LMS_RETURN_IF_ERROR(r.params.Validate());
  if (r.prompt.empty()) return Status::InvalidArgument("the prompt is empty (no tokens)");
  const int32_t n_vocab = model_.config().n_vocab;
  for (int32_t t : r.prompt) {
    if (t < 0 || t >= n_vocab) return Status::InvalidArgument(fmt::format("prompt token id {} is outside the vocabulary", t));
  }
  for (int32_t t : r.params.stop_token_ids) {
    if (t < 0 || t >= n_vocab) return Status::InvalidArgument(fmt::format("stop token id {} is outside the vocabulary", t));
  }
  if (static_cast<int64_t>(r.prompt.size()) >= max_seq_len_) {
    return Status::OutOfRange(fmt::format("the prompt has {} tokens; the context holds {} (prompt and output)",
                                          r.prompt.size(), max_seq_len_));
  }
  return Status::Ok();
}

Status EngineCore::Add(Request r, std::shared_ptr<RequestChannel> channel) {
  LMS_RETURN_IF_ERROR(Check(r));
  auto g = std::make_unique<Group>();
  g->order = next_order_++ << kChoiceBits;
  g->request = std::move(r);
  g->channel = std::move(channel);
  g->arrival_s = Now();
  auto s = std::make_unique<Seq>();
  s->id = next_seq_id_++;
  s->group = g.get();
  s->prompt_len = static_cast<int32_t>(g->request.prompt.size());
  s->sampler = std::make_unique<Sampler>(g->request.params.sampling);
  for (int32_t t : g->request.prompt) s->sampler->Accept(t);
  s->decoder = std::make_unique<StreamDecoder>(model_.tokenizer());
  s->stops = std::make_unique<StopStringMatcher>(g->request.params.stop);
  s->forked = g->request.params.n == 1;
  scheduler_->AddWaiting(s->id, g->order, g->request.prompt, g->request.params.n);
  g->seq_ids.push_back(s->id);
  seqs_[s->id] = std::move(s);
  metrics_.requests_received++;
  metrics_.prompt_tokens += g->request.prompt.size();
  groups_[g->order] = std::move(g);
  return Status::Ok();
}

void EngineCore::ForkChoices(Seq& parent) {
  Group& g = *parent.group;
  SchedSeq* ps = scheduler_->Find(parent.id);
  ps->seats = 1;
  parent.forked = true;
  for (int32_t i = 1; i < g.request.params.n; ++i) {
    auto s = std::make_unique<Seq>();
    s->id = next_seq_id_++;
    s->index = i;
    s->group = &g;
    s->prompt_len = parent.prompt_len;
    s->forked = true;
    SamplingParams sp = g.request.params.sampling;
    sp.seed += static_cast<uint64_t>(i);  // choice i draws with seed + i
    s->sampler = std::make_unique<Sampler>(sp);
    for (int32_t t : g.request.prompt) s->sampler->Accept(t);
    s->decoder = std::make_unique<StreamDecoder>(model_.tokenizer());
    s->stops = std::make_unique<StopStringMatcher>(g.request.params.stop);
    scheduler_->Fork(*ps, s->id, g.order + static_cast<uint64_t>(i));
    g.seq_ids.push_back(s->id);
    seqs_[s->id] = std::move(s);
  }
}

void EngineCore::Finish(Seq& seq, const std::string& reason, const std::string& error) {
  StreamEvent e;
  // Emit what the decoder and stop matcher still hold, unless a stop string ended the text.
  if (reason == "length" || reason == "stop") e.text = seq.stops->Push(seq.decoder->Flush()) + seq.stops->Flush();
  e.finish_reason = reason;
  e.error = error;
  Finish(seq, std::move(e));
}

void EngineCore::Finish(Seq& seq, StreamEvent e) {
  Group& g = *seq.group;
  const double now = Now();
  e.index = seq.index;
  e.prompt_tokens = seq.prompt_len;
  e.cached_prompt_tokens = std::max(0, g.cached_prompt_tokens);
  e.completion_tokens = seq.generated;
  const bool abandoned = e.finish_reason == "cancelled" || e.finish_reason == "error";
  if (e.finish_reason == "cancelled") g.cancelled = true;
  if (seq.generated > 1) metrics_.tpot_s.Observe((now - seq.first_token_s) / (seq.generated - 1));
  g.channel->Push(e);
  // Choices not forked yet still owe the caller their final event.
  if (abandoned && !seq.forked) {
    for (int32_t i = 1; i < g.request.params.n; ++i) {
      StreamEvent c = e;
      c.index = i;
      c.completion_tokens = 0;
      c.text.clear();
      g.channel->Push(c);
    }
  }
  scheduler_->Remove(seq.id);
  g.seq_ids.erase(std::find(g.seq_ids.begin(), g.seq_ids.end(), seq.id));
  seqs_.erase(seq.id);  // `seq` is gone from here on
  if (g.seq_ids.empty()) {
    metrics_.requests_finished++;
    if (g.cancelled) metrics_.requests_cancelled++;  // not channel->cancelled(): a client may go away after its last event
    groups_.erase(g.order);
  }
}

void EngineCore::DropCancelled() {
  std::vector<int64_t> doomed;
  for (auto& [order, g] : groups_) {
    if (g->channel->cancelled()) doomed.insert(doomed.end(), g->seq_ids.begin(), g->seq_ids.end());
  }
  for (int64_t id : doomed) Finish(*seqs_.at(id), "cancelled");
}

void EngineCore::CancelAll() {
  std::vector<int64_t> all;
  for (auto& [id, s] : seqs_) all.push_back(id);
  for (int64_t id : all) Finish(*seqs_.at(id), "cancelled");
}

void EngineCore::SampleAndEmit(Seq& seq, std::span<const float> logits) {
  Emit(seq, seq.sampler->Sample(logits), logits);
}

bool EngineCore::IdsSuffice(const std::vector<int64_t>& sampling) const {
  for (int64_t id : sampling) {
    const Seq& s = *seqs_.at(id);
    if (!s.sampler->params().plain_greedy() || s.group->request.params.logprobs >= 0) return false;
    // A group not yet forked samples each of its choices from this row: all plain greedy alike.
  }
  return !sampling.empty();
}

void EngineCore::Emit(Seq& seq, int32_t tok, std::span<const float> logits) {
  Group& g = *seq.group;
  const RequestParams& p = g.request.params;
  SchedSeq* ss = scheduler_->Find(seq.id);
  const double now = Now();
  if (seq.first_token_s < 0) {
    seq.first_token_s = now;
    if (!g.first_token_seen) {
      g.first_token_seen = true;
      metrics_.ttft_s.Observe(now - g.arrival_s);
    }
  }
  StreamEvent e;
  e.index = seq.index;
  if (p.logprobs >= 0) {
    e.has_logprobs = true;
    e.logprobs.logprob = Sampler::Logprob(logits, tok);
    if (p.logprobs > 0) e.logprobs.top = Sampler::TopLogprobs(logits, p.logprobs);
  }
  const bool stop_token = (!p.ignore_eos && model_.tokenizer().IsEndOfGeneration(tok)) ||
                          std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), tok) != p.stop_token_ids.end();
  if (stop_token) {
    Finish(seq, "stop");
    return;
  }
  seq.sampler->Accept(tok);
  ss->tokens.push_back(tok);
  ++seq.generated;
  metrics_.generation_tokens++;
  e.token = tok;
  e.text = seq.stops->Push(seq.decoder->Push(tok));
  if (seq.stops->stopped()) {
    e.finish_reason = "stop";
    Finish(seq, std::move(e));
  } else if (seq.generated >= p.max_tokens || static_cast<int64_t>(ss->tokens.size()) >= max_seq_len_) {
    e.text += seq.stops->Push(seq.decoder->Flush()) + seq.stops->Flush();
    e.finish_reason = "length";
    Finish(seq, std::move(e));
  } else {
    g.channel->Push(std::move(e));
  }
}

Status EngineCore::Step() {
  DropCancelled();
  if (groups_.empty()) return Status::Ok();
  last_ = scheduler_->Schedule();
  metrics_.steps++;
  metrics_.preemptions += last_.preempted.size();
  metrics_.prefix_query_tokens += last_.prefix_query_tokens;
  metrics_.prefix_hit_tokens += last_.prefix_hit_tokens;
  if (last_.seqs.empty()) return Status::Ok();

  const int32_t bs = blocks_->block_size();
  batch_.tokens.clear();
  batch_.positions.clear();
  batch_.seq_of_token.clear();
  batch_.slots.clear();
  batch_.block_tables.clear();
  batch_.logit_rows.clear();
  std::vector<int64_t> sampling;  // sequences whose logits row comes back, in row order
  for (size_t i = 0; i < last_.seqs.size(); ++i) {
    const auto& [ss, id, n_new] = last_.seqs[i];
    Group& g = *seqs_.at(id)->group;
    if (g.cached_prompt_tokens < 0) g.cached_prompt_tokens = ss->num_computed;  // first admission
    batch_.block_tables.push_back(ss->blocks);
    for (int32_t t = 0; t < n_new; ++t) {
      const int32_t pos = ss->num_computed + t;
      batch_.tokens.push_back(ss->tokens[pos]);
      batch_.positions.push_back(pos);
      batch_.seq_of_token.push_back(static_cast<int32_t>(i));
      batch_.slots.push_back(ss->blocks[pos / bs] * bs + pos % bs);
    }
    if (ss->num_computed + n_new == static_cast<int32_t>(ss->tokens.size())) {
      batch_.logit_rows.push_back(batch_.n_tokens() - 1);
      sampling.push_back(id);
    }
  }
  const size_t n_vocab = model_.config().n_vocab;
  // Plain greedy choices need only the argmax, which the backend finds where the logits are (on a
  // GPU only the ids come back).
  const bool ids_only = IdsSuffice(sampling);
  Status st;
  if (ids_only) {
    ids_.resize(batch_.logit_rows.size());
    st = forward_->ForwardGreedy(batch_, *kv_, ids_.data());
    metrics_.greedy_id_steps++;
  } else {
    logits_.resize(batch_.logit_rows.size() * n_vocab);
    st = forward_->Forward(batch_, *kv_, logits_.data());
  }
  if (!st.ok()) {
    LogError("serve engine: forward failed: " + st.message());
    for (const auto& s : last_.seqs) Finish(*seqs_.at(s.id), "error", st.message());
    for (auto& s : last_.seqs) s.seq = nullptr;
    return st;
  }
  scheduler_->OnComputed(last_);
  metrics_.computed_tokens += last_.n_tokens;
  for (auto& s : last_.seqs) s.seq = nullptr;  // may be removed below

  for (size_t r = 0; r < sampling.size(); ++r) {
    const std::span<const float> row =
        ids_only ? std::span<const float>() : std::span<const float>(logits_.data() + r * n_vocab, n_vocab);
    auto emit = [&](Seq& s) { ids_only ? Emit(s, ids_[r], {}) : SampleAndEmit(s, row); };
    Seq& seq = *seqs_.at(sampling[r]);
    if (!seq.forked) {
      Group& g = *seq.group;
      ForkChoices(seq);
      // Every choice draws its first token from the prompt's logits.
      const std::vector<int64_t> choices = g.seq_ids;
      for (int64_t id : choices) emit(*seqs_.at(id));
    } else {
      emit(seq);
    }
  }
  return Status::Ok();
}

EngineMetrics EngineCore::Metrics() const {
  EngineMetrics m = metrics_;
  m.running = static_cast<int64_t>(scheduler_->n_running());
  m.waiting = static_cast<int64_t>(scheduler_->n_waiting());
  m.kv_blocks_total = blocks_->n_total();
  m.kv_blocks_used = blocks_->n_used();
  m.kv_blocks_cached = blocks_->n_cached();
  // Tokens each referenced block holds: a sequence fills its blocks in order, so block i of
  // a table holds min(block_size, num_computed - i * block_size) of its tokens; a block shared
  // by several tables (a cached prefix, the choices of n > 1) counts once.
  const int32_t bs = blocks_->block_size();
  std::unordered_map<int32_t, int32_t> held;
  for (const auto& [id, s] : seqs_) {
    const SchedSeq* ss = scheduler_->Find(id);
    if (ss == nullptr) continue;
    for (size_t i = 0; i < ss->blocks.size(); ++i) {
      const int32_t n = std::clamp<int32_t>(ss->num_computed - static_cast<int32_t>(i) * bs, 0, bs);
      int32_t& h = held[ss->blocks[i]];
      h = std::max(h, n);
    }
  }
  m.kv_block_size = bs;
  m.kv_tokens_held = 0;
  for (const auto& [block, n] : held) m.kv_tokens_held += n;
  return m;
}

// ---- Engine: the thread around an EngineCore ----

Result<std::unique_ptr<Engine>> Engine::Start(const Model& model, Backend& backend, const EngineOptions& options) {
  LMS_ASSIGN_OR_RETURN(auto core, EngineCore::Create(model, backend, options));
  std::unique_ptr<Engine> e(new Engine(std::move(core)));
  e->max_waiting_ = std::max(1, options.max_waiting);
  e->snapshot_ = e->core_->Metrics();
  e->thread_ = std::thread([p = e.get()] { p->Loop(); });
  return e;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::shared_ptr<RequestChannel>> Engine::Submit(Request r) {
  LMS_RETURN_IF_ERROR(core_->Check(r));  // reads only immutable state
  auto ch = std::make_shared<RequestChannel>(r.params.n);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Status::Cancelled("the engine is shutting down");
    if (snapshot_.waiting + static_cast<int64_t>(pending_.size()) >= max_waiting_) {
      return Status::ResourceExhausted(fmt::format("the request queue is full ({} waiting)", max_waiting_));
    }
    pending_.emplace_back(std::move(r), ch);
  }
  cv_.notify_all();
  return ch;
}

EngineMetrics Engine::Metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineMetrics m = snapshot_;
  m.waiting += static_cast<int64_t>(pending_.size());
  return m;
}

void Engine::Loop() {
  std::vector<std::pair<Request, std::shared_ptr<RequestChannel>>> incoming;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !pending_.empty() || core_->HasWork(); });
      if (stop_) break;
      incoming.swap(pending_);
      snapshot_.waiting += static_cast<int64_t>(incoming.size());  // now queued in the core
    }
    for (auto& [req, ch] : incoming) {
      const int32_t n = req.params.n;
      if (Status s = core_->Add(std::move(req), ch); !s.ok()) {
        for (int32_t i = 0; i < n; ++i) {
          StreamEvent e;
          e.index = i;
          e.finish_reason = "error";
          e.error = s.message();
          ch->Push(e);
        }
      }
    }
    incoming.clear();
    Status st = core_->Step();
    (void)st;  // failed requests were told through their channels
    EngineMetrics m = core_->Metrics();
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_ = std::move(m);  // waiting: the core's queue; pending_ is counted apart
  }
  core_->CancelAll();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [req, ch] : pending_) {
    for (int32_t i = 0; i < req.params.n; ++i) {
      StreamEvent e;
      e.index = i;
      e.finish_reason = "cancelled";
      ch->Push(e);
    }
  }
  pending_.clear();
}

}  // namespace lms::serve
