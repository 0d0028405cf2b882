#include "core/sample/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace lms {

Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0 || temperature > 100)
    return Status::InvalidArgument(fmt::format("temperature {} must be in [0, 100]", temperature));
  if (!(top_p > 0 && top_p <= 1.0f)) return Status::InvalidArgument(fmt::format("top_p {} must be in (0, 1]", top_p));
  if (!(min_p >= 0 && min_p <= 1.0f)) return Status::InvalidArgument(fmt::format("min_p {} must be in [0, 1]", min_p));
  if (!(repeat_penalty > 0 && repeat_penalty <= 10))
    return Status::InvalidArgument(fmt::format("repeat_penalty {} must be in (0, 10]", repeat_penalty));
  if (!(std::fabs(frequency_penalty) <= 2.0f))
    return Status::InvalidArgument(fmt::format("frequency_penalty {} must be in [-2, 2]", frequency_penalty));
  if (!(std::fabs(presence_penalty) <= 2.0f))
    return Status::InvalidArgument(fmt::format("presence_penalty {} must be in [-2, 2]", presence_penalty));
  if (repeat_last_n < -1) return Status::InvalidArgument("repeat_last_n must be >= -1");
  return Status::Ok();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::Reset() {
  rng_.seed(params_.seed);
  recent_.clear();
  counts_.clear();
}

void Sampler::Accept(int32_t token) {
  recent_.push_back(token);
  ++counts_[token];
  if (params_.repeat_last_n >= 0) {
    while (static_cast<int32_t>(recent_.size()) > params_.repeat_last_n) {
      int32_t old = recent_.front();
      recent_.pop_front();
      if (--counts_[old] == 0) counts_.erase(old);
    }
  }
}

double Sampler::Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::Sample(std::span<const float> logits) {
  const int32_t n = static_cast<int32_t>(logits.size());
  const bool penalise = params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                        params_.presence_penalty != 0.0f;
  auto penalised = [&](int32_t id, float l) {
    auto it = counts_.find(id);
    if (it == counts_.end()) return l;
    if (params_.repeat_penalty != 1.0f) l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
    return l - it->second * params_.frequency_penalty - params_.presence_penalty;
  };
  if (params_.greedy()) {
    int32_t best = 0;
    float best_l = -std::numeric_limits<float>::infinity();
    for (int32_t i = 0; i < n; ++i) {
      float l = penalise ? penalised(i, logits[i]) : logits[i];
      if (l > best_l) {  // first maximum wins, like llama.cpp's greedy sampler
        best_l = l;
        best = i;
      }
    }
    return best;
  }
  cand_.resize(n);
  for (int32_t i = 0; i < n; ++i) cand_[i] = {i, penalise ? penalised(i, logits[i]) : logits[i], 0.0f};
  size_t size = cand_.size();
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < size) {
    std::partial_sort(cand_.begin(), cand_.begin() + params_.top_k, cand_.end(), by_logit);
    size = params_.top_k;
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Probabilities at temperature 1 for the top-p and min-p cuts, as llama.cpp orders them.
  auto softmax = [&](float temp) {
    const float mx = cand_[0].logit;
    double sum = 0;
    for (size_t i = 0; i < size; ++i) {
      cand_[i].p = std::exp((cand_[i].logit - mx) / temp);
      sum += cand_[i].p;
    }
    for (size_t i = 0; i < size; ++i) cand_[i].p = static_cast<float>(cand_[i].p / sum);
  };
  softmax(1.0f);
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = size;
    for (size_t i = 0; i < size; ++i) {
      cum += cand_[i].p;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    size = keep;
  }
  if (params_.min_p > 0.0f) {
    const float cut = cand_[0].p * params_.min_p;
    size_t keep = 1;
    while (keep < size && cand_[keep].p >= cut) ++keep;
    size = keep;
  }
  softmax(params_.temperature);
  double r = Uniform(), cum = 0;
  for (size_t i = 0; i < size; ++i) {
    cum += cand_[i].p;
    if (r < cum) return cand_[i].id;
  }
  return cand_[size - 1].id;
}

float Sampler::Logprob(std::span<const float> logits, int32_t token) {
  float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  return static_cast<float>(logits[token] - mx - std::log(sum));
}

std::vector<TokenLogprob> Sampler::TopLogprobs(std::span<const float> logits, int top_n) {
  float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  const float lse = static_cast<float>(mx + std::log(sum));
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  top_n = std::min<int>(top_n, static_cast<int>(ids.size()));
  std::partial_sort(ids.begin(), ids.begin() + top_n, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  std::vector<TokenLogprob> out;
  for (int i = 0; i < top_n; ++i) out.push_back({ids[i], logits[ids[i]] - lse});
  return out;
}

}  // namespace lms
