#include "core/model/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace lms {

Result<std::unique_ptr<Session>> Session::Create(const Model& model, Backend& backend,
                                                 const SessionOptions& o) {
  const auto& c = model.config();
  int32_t n_ctx = o.n_ctx > 0 ? std::min(o.n_ctx, c.n_ctx_train) : c.n_ctx_train;
  if (n_ctx <= 0) return Status::InvalidArgument("context size must be positive");
  const int32_t n_batch = std::clamp(o.n_batch, 1, n_ctx);
  KvCacheOptions kvo;
  kvo.block_size = o.kv_block;
  kvo.context_tokens = n_ctx;
  kvo.type = o.kv_type;
  LMS_ASSIGN_OR_RETURN(KvCache kv, KvCache::Create(backend, c, kvo));
  std::unique_ptr<Session> s(new Session(model, std::move(kv), n_ctx, n_batch));
  LMS_ASSIGN_OR_RETURN(s->forward_, LlamaForward::Create(c, model.weights(), backend, n_batch));
  s->last_logits_.assign(c.n_vocab, 0.0f);
  return s;
}

Status Session::Feed(std::span<const int32_t> tokens, std::vector<float>* all_logits) {
  return Eval(tokens, all_logits, nullptr);
}

Result<int32_t> Session::FeedGreedy(std::span<const int32_t> tokens) {
  if (tokens.empty()) return Status::InvalidArgument("FeedGreedy: no tokens");
  int32_t id = -1;
  LMS_RETURN_IF_ERROR(Eval(tokens, nullptr, &id));
  return id;
}

Status Session::Eval(std::span<const int32_t> tokens, std::vector<float>* all_logits, int32_t* argmax) {
  const int32_t n_vocab = model_.config().n_vocab;
  if (tokens.empty()) return Status::Ok();
  if (n_past() + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    return Status::OutOfRange(fmt::format("{} tokens after {} already in context exceed the context size {}",
                                          tokens.size(), n_past(), n_ctx_));
  }
  for (int32_t t : tokens) {
    if (t < 0 || t >= n_vocab) return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary", t));
  }
  size_t done = 0;
  while (done < tokens.size()) {
    const int32_t n = static_cast<int32_t>(std::min<size_t>(n_batch_, tokens.size() - done));
    const int32_t start = n_past();
    LMS_RETURN_IF_ERROR(kv_.Reserve(seq_, start + n));
    batch_.tokens.assign(tokens.begin() + done, tokens.begin() + done + n);
    batch_.positions.resize(n);
    batch_.seq_of_token.assign(n, 0);
    batch_.slots.resize(n);
    for (int32_t i = 0; i < n; ++i) {
      batch_.positions[i] = start + i;
      batch_.slots[i] = kv_.Slot(seq_, start + i);
    }
    batch_.block_tables.assign(1, seq_.blocks);
    batch_.logit_rows.clear();
    if (all_logits) {
      for (int32_t i = 0; i < n; ++i) batch_.logit_rows.push_back(i);
    } else {
      batch_.logit_rows.push_back(n - 1);
    }
    if (argmax) {
      LMS_RETURN_IF_ERROR(forward_->ForwardGreedy(batch_, kv_, argmax));
      logits_fresh_ = false;
    } else {
      chunk_logits_.resize(batch_.logit_rows.size() * static_cast<size_t>(n_vocab));
      LMS_RETURN_IF_ERROR(forward_->Forward(batch_, kv_, chunk_logits_.data()));
      if (all_logits) all_logits->insert(all_logits->end(), chunk_logits_.begin(), chunk_logits_.end());
      std::memcpy(last_logits_.data(), chunk_logits_.data() + chunk_logits_.size() - n_vocab,
                  n_vocab * sizeof(float));
      logits_fresh_ = true;
    }
    seq_.n_tokens = start + n;
    history_.insert(history_.end(), batch_.tokens.begin(), batch_.tokens.end());
    done += n;
  }
  return Status::Ok();
}

Result<int32_t> Session::FeedReusingPrefix(std::span<const int32_t> tokens, int32_t* argmax) {
  size_t common = 0;
  while (common < history_.size() && common < tokens.size() && history_[common] == tokens[common]) ++common;
  if (common == tokens.size() && common > 0) --common;  // re-evaluate the last token for logits
  Rewind(static_cast<int32_t>(common));
  LMS_RETURN_IF_ERROR(Eval(tokens.subspan(common), nullptr, argmax));
  return static_cast<int32_t>(tokens.size() - common);
}

void Session::Rewind(int32_t n) {
  if (n >= n_past()) return;
  history_.resize(n);
  kv_.Truncate(seq_, n);
  seq_.n_tokens = n;
}

}  // namespace lms
