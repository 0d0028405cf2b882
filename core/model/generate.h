// Text generation for one sequence: evaluate the prompt, then sample token by token until an
// end-of-generation token, a stop string or the token limit, streaming text as it is produced.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/model/session.h"
#include "core/sample/sampler.h"

namespace lms {

struct GenerateOptions {
  int32_t max_tokens = 128;
  std::vector<std::string> stop;  // stop strings: generation ends before them
  bool ignore_eos = false;        // keep going past end-of-generation tokens (benchmarks)
  bool reuse_prefix = false;      // keep the session's cached prefix shared with the prompt
  // Plain greedy sampling (SamplingParams::plain_greedy) takes each token as the backend's argmax
  // (Session::FeedGreedy: on a GPU no logits come to the host); false: the sampler reads the
  // logits, as for every other sampling.
  bool greedy_ids = true;
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> tokens;    // generated ids (the stop token excluded)
  int32_t prompt_tokens = 0;      // prompt length
  int32_t evaluated_prompt_tokens = 0;  // prompt tokens actually computed (prefix reuse)
  double prompt_ms = 0;
  double generate_ms = 0;
  std::string finish_reason;      // "stop" (EOS or stop string), "length", "cancelled"
  double prompt_tokens_per_s() const;
  double generate_tokens_per_s() const;
};

// Receives text as it becomes final (never a piece of a pending stop string or a partial UTF-8
// character). Return false to stop generating.
using TextCallback = std::function<bool(std::string_view text)>;

Result<GenerateResult> Generate(Session& session, Sampler& sampler, std::span<const int32_t> prompt,
                                const GenerateOptions& options, const TextCallback& on_text = {});

// Finds stop strings in streamed text, holding back any tail that could still become one.
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what can be emitted now. Sets stopped() when a stop string appeared
  // (the returned text ends right before it).
  std::string Push(std::string_view text);
  std::string Flush();  // at the end: whatever was held back
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace lms
