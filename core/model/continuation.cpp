#include "core/model/continuation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace lms {

double TokenLogProb(std::span<const float> logits, int32_t token) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  return static_cast<double>(logits[static_cast<size_t>(token)]) - mx - std::log(sum);
}

Result<std::vector<double>> ContinuationLogProbs(Session& session, std::span<const int32_t> prompt,
                                                 const std::vector<std::vector<int32_t>>& options) {
  if (prompt.empty()) return Status::InvalidArgument("forced choice needs a non-empty prompt");
  const int32_t n_vocab = session.model().config().n_vocab;
  session.Rewind(0);
  LMS_RETURN_IF_ERROR(session.Feed(prompt));
  const int32_t base = session.n_past();
  const std::vector<float> after_prompt(session.last_logits().begin(), session.last_logits().end());
  std::vector<double> out;
  out.reserve(options.size());
  for (const auto& option : options) {
    double lp = 0;
    for (size_t i = 0; i < option.size(); ++i) {
      const int32_t t = option[i];
      if (t < 0 || t >= n_vocab) return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary", t));
      lp += TokenLogProb(i == 0 ? std::span<const float>(after_prompt) : session.last_logits(), t);
      if (i + 1 < option.size()) LMS_RETURN_IF_ERROR(session.Feed(std::span<const int32_t>(&option[i], 1)));
    }
    session.Rewind(base);
    out.push_back(lp);
  }
  return out;
}

}  // namespace lms
