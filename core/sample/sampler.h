// Turns logits into the next token: penalties, then top-k, top-p, min-p, temperature and a
// seeded draw — or the argmax when temperature is 0. Same seed, same logits → same tokens.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/util/status.h"

namespace lms {

struct SamplingParams {
  float temperature = 0.8f;        // <= 0: greedy
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // 1: off (divides positive logits, multiplies negative ones)
  int32_t repeat_last_n = 64;      // window for all penalties; -1: the whole history
  float frequency_penalty = 0.0f;  // subtract count * value
  float presence_penalty = 0.0f;   // subtract value once if present
  uint64_t seed = 0xC0FFEE;

  // Rejects values outside their meaningful ranges, naming the parameter.
  Status Validate() const;
  bool greedy() const { return temperature <= 0.0f; }
  // Greedy with no penalty: the choice is the logits' first maximum alone (Backend::ArgMaxRows).
  bool plain_greedy() const {
    return greedy() && repeat_penalty == 1.0f && frequency_penalty == 0.0f && presence_penalty == 0.0f;
  }
};

struct TokenLogprob {
  int32_t token;
  float logprob;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Chooses a token from one row of logits (n_vocab floats). Does not record it: call Accept.
  int32_t Sample(std::span<const float> logits);
  // Records a token as part of the history the penalties look at (prompt tokens too).
  void Accept(int32_t token);
  void Reset();
  const SamplingParams& params() const { return params_; }

  // log-softmax of raw logits: the logprob of `token` and the `top_n` most likely tokens.
  static float Logprob(std::span<const float> logits, int32_t token);
  static std::vector<TokenLogprob> TopLogprobs(std::span<const float> logits, int top_n);

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  double Uniform();  // [0, 1)

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;                 // last repeat_last_n accepted tokens
  std::unordered_map<int32_t, int32_t> counts_;  // counts within recent_
  std::vector<Candidate> cand_;
};

}  // namespace lms
