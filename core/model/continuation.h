// Forced choice between continuations: the log-probability a model gives each candidate token
// sequence right after a prompt. Used by judges that answer by the probabilities of "A", "B",
// "C" (or of the grades 1–10) instead of by generated text.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/model/session.h"

namespace lms {

// Evaluates `prompt` once (from an empty session), then for each option the sum over its tokens
// of log p(token | prompt, earlier option tokens), natural log, softmax over the whole
// vocabulary. The session is left holding the prompt only. An empty option scores 0.
Result<std::vector<double>> ContinuationLogProbs(Session& session, std::span<const int32_t> prompt,
                                                 const std::vector<std::vector<int32_t>>& options);

// log softmax(logits)[token], computed in double precision.
double TokenLogProb(std::span<const float> logits, int32_t token);

}  // namespace lms
