// What answers a conversation: a local model, an OpenAI-compatible endpoint, or (later) the
// serving engine. Jobs (answer, judge, arena) see only this interface, so a batched engine can
// replace the one-request-at-a-time local runner without touching them.
#pragma once

#include <string>
#include <vector>

#include "core/util/status.h"

namespace lms::eval {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct AnswerText {
  std::string text;
  int64_t tokens = 0;     // generated tokens (0 when the backend does not say)
  double latency_ms = 0;  // wall time of the request
};

class Answerer {
 public:
  virtual ~Answerer() = default;
  // The reply to `conversation` (ending with a user message). Deterministic for a fixed seed
  // when the backend allows it.
  virtual Result<AnswerText> Reply(const std::vector<ChatMessage>& conversation) = 0;

  // Forced choice: the natural-log probability of each of `options` as the text that follows
  // once the reply has begun with `reply_prefix` (e.g. prefix "[[", options "A]]", "B]]", "C]]").
  // Backends that cannot score text return Unsupported.
  virtual Result<std::vector<double>> OptionLogProbs(const std::vector<ChatMessage>& conversation, const std::string& reply_prefix,
                                                     const std::vector<std::string>& options) {
    (void)conversation, (void)reply_prefix, (void)options;
    return Status::Unsupported("this judge cannot score options by probability (a local model can)");
  }

  // How many calls may run at once from different threads (jobs start that many conversations
  // together); 1: one call at a time.
  virtual int concurrency() const { return 1; }
};

}  // namespace lms::eval
