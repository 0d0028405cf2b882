// What a caller hands the serving engine (a tokenized prompt and how to continue it) and what
// comes back (a stream of events through a per-request channel).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/sample/sampler.h"

namespace lms::serve {

struct RequestParams {
  SamplingParams sampling;
  int32_t max_tokens = 256;             // generated tokens per choice, at most
  int32_t n = 1;                        // choices sampled from one prompt (they share its blocks)
  std::vector<std::string> stop;        // stop strings (the text ends before them)
  std::vector<int32_t> stop_token_ids;  // extra stop tokens besides end-of-generation
  bool ignore_eos = false;
  int32_t logprobs = -1;                // < 0: none; k >= 0: the chosen token's logprob + top k

  // Names the parameter that is out of range.
  Status Validate() const;
};

struct Request {
  std::vector<int32_t> prompt;
  RequestParams params;
};

// A log-probability report for one generated token.
struct TokenLogprobs {
  float logprob = 0;
  std::vector<TokenLogprob> top;
};

// One thing that happened to one choice of a request.
struct StreamEvent {
  int32_t index = 0;        // which choice (0..n-1)
  int32_t token = -1;       // the generated token id (-1 on a final event without a token)
  std::string text;         // text that became final with this token (may be empty)
  bool has_logprobs = false;
  TokenLogprobs logprobs;
  // Set on the choice's last event: "stop", "length", "cancelled" or "error".
  std::string finish_reason;
  std::string error;        // when finish_reason == "error"
  int32_t prompt_tokens = 0;      // on final events: prompt length
  int32_t cached_prompt_tokens = 0;  // on final events: prompt tokens served from the prefix cache
  int32_t completion_tokens = 0;  // on final events: tokens this choice generated
};

// The per-request channel between the engine thread (producer) and one caller (consumer).
// Thread-safe.
class RequestChannel {
 public:
  explicit RequestChannel(int32_t n_choices) : open_choices_(n_choices) {}

  // Engine side.
  void Push(StreamEvent e);
  bool cancelled() const;

  // Caller side. Waits for the next event up to `timeout`; false on timeout. Once every
  // choice has delivered its final event and the queue is drained, returns false at once
  // with done() true.
  bool Next(StreamEvent& out, std::chrono::milliseconds timeout);
  bool done() const;
  // Asks the engine to stop this request; it frees its blocks within one step and sends a
  // final "cancelled" event for every unfinished choice.
  void Cancel();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;  // GUARDED_BY(mu_)
  int32_t open_choices_;            // GUARDED_BY(mu_)
  bool cancelled_ = false;          // GUARDED_BY(mu_)
};

}  // namespace lms::serve
