#include "core/model/generate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace lms {

double GenerateResult::prompt_tokens_per_s() const {
  return prompt_ms > 0 ? evaluated_prompt_tokens / (prompt_ms / 1000.0) : 0.0;
}
double GenerateResult::generate_tokens_per_s() const {
  // The first generated token comes from the prompt's logits; the rest each cost a forward.
  const size_t steps = tokens.size() > 0 ? tokens.size() - 1 : 0;
  return generate_ms > 0 ? steps / (generate_ms / 1000.0) : 0.0;
}

std::string StopStringMatcher::Push(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);
  size_t best = std::string::npos;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    size_t at = pending_.find(s);
    if (at != std::string::npos) best = std::min(best, at);
  }
  if (best != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, best);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStringMatcher::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

Result<GenerateResult> Generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt,
                                const GenerateOptions& o, const TextCallback& on_text) {
  using Clock = std::chrono::steady_clock;
  const Tokenizer& tok = session.model().tokenizer();
  GenerateResult r;
  r.prompt_tokens = static_cast<int32_t>(prompt.size());
  if (prompt.empty()) return Status::InvalidArgument("the prompt is empty (no tokens)");
  if (static_cast<int64_t>(prompt.size()) >= session.n_ctx()) {
    return Status::OutOfRange(fmt::format("the prompt has {} tokens; the context holds {}",
                                          prompt.size(), session.n_ctx()));
  }
  // ids_only: each next token is the argmax the last feed returned (`argmax`), no logits read.
  const bool ids_only = o.greedy_ids && sampler.params().plain_greedy();
  int32_t argmax = -1;
  auto t0 = Clock::now();
  if (o.reuse_prefix) {
    LMS_ASSIGN_OR_RETURN(r.evaluated_prompt_tokens, session.FeedReusingPrefix(prompt, ids_only ? &argmax : nullptr));
  } else {
    session.Rewind(0);
    if (ids_only) {
      LMS_ASSIGN_OR_RETURN(argmax, session.FeedGreedy(prompt));
    } else {
      LMS_RETURN_IF_ERROR(session.Feed(prompt));
    }
    r.evaluated_prompt_tokens = static_cast<int32_t>(prompt.size());
  }
  auto t1 = Clock::now();
  r.prompt_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  for (int32_t t : prompt) sampler.Accept(t);

  StreamDecoder decoder(tok);
  StopStringMatcher stops(o.stop);
  auto emit = [&](const std::string& s) -> bool {
    if (s.empty()) return true;
    r.text += s;
    return on_text ? on_text(s) : true;
  };
  r.finish_reason = "length";
  for (int32_t i = 0; i < o.max_tokens; ++i) {
    if (i > 0) {
      if (session.n_past() >= session.n_ctx()) break;
      const int32_t last = r.tokens.back();
      if (ids_only) {
        LMS_ASSIGN_OR_RETURN(argmax, session.FeedGreedy(std::span<const int32_t>(&last, 1)));
      } else {
        LMS_RETURN_IF_ERROR(session.Feed(std::span<const int32_t>(&last, 1)));
      }
    }
    const int32_t next = ids_only ? argmax : sampler.Sample(session.last_logits());
    if (!o.ignore_eos && tok.IsEndOfGeneration(next)) {
      r.finish_reason = "stop";
      break;
    }
    sampler.Accept(next);
    r.tokens.push_back(next);
    std::string piece = stops.Push(decoder.Push(next));
    if (!emit(piece)) {
      r.finish_reason = "cancelled";
      break;
    }
    if (stops.stopped()) {
      r.finish_reason = "stop";
      break;
    }
  }
  if (!stops.stopped() && r.finish_reason != "cancelled") emit(stops.Push(decoder.Flush()) + stops.Flush());
  r.generate_ms = std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
  return r;
}

}  // namespace lms
