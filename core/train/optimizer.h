// AdamW with decoupled weight decay on matrices only, gradient clipping by global norm, and a
// linear-warmup + cosine learning-rate schedule.
#pragma once

#include <cstdint>
#include <vector>

#include "core/train/train_model.h"

namespace lms::train {

struct OptimConfig {
  float lr = 1e-3f;            // peak learning rate
  float min_lr = 1e-4f;        // floor of the cosine
  int32_t warmup_steps = 10;
  int32_t total_steps = 100;   // the cosine reaches min_lr here
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;   // applied to matrices only
  float grad_clip = 1.0f;      // max global L2 norm; <= 0 disables clipping
};

// Learning rate at `step` (0-based): lr·(step+1)/warmup during warm-up, then a cosine from lr
// down to min_lr at total_steps, min_lr after.
float LearningRate(const OptimConfig& c, int64_t step);

// sqrt(Σ g²) accumulated in double.
double GlobalNorm(const std::vector<float>& g);
// Σ g² over n elements, in double.
double SumSquares(const float* g, int64_t n);

// The per-step constants of one AdamW update.
struct AdamWScalars {
  float clip, lr, beta1, beta2, bc1, bc2, eps, weight_decay;
};

namespace avx2 {
// The AdamW loop over n elements (see AdamW::Step), 8 lanes at a time.
void AdamWUpdate(const AdamWScalars& s, float* p, float* g, float* m, float* v, const uint8_t* decay,
                 int64_t n);
// Σ g² in double (four interleaved partial sums).
double SumSquares(const float* g, int64_t n);
}  // namespace avx2

class AdamW {
 public:
  AdamW(const OptimConfig& c, const ParamLayout& layout);

  // Clips g in place to c.grad_clip, then updates params for step `step` (0-based) with the
  // scheduled learning rate. Returns the gradient norm before clipping.
  double Step(int64_t step, std::vector<float>& params, std::vector<float>& grads);
  // The same update of elements [begin, end) only, clipped by a norm computed elsewhere (a
  // process of a multi-process run updates the range it owns, with the norm of all ranks).
  void Update(int64_t step, std::vector<float>& params, std::vector<float>& grads, int64_t begin, int64_t end,
              double norm);

  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  const OptimConfig& config() const { return c_; }

 private:
  OptimConfig c_;
  std::vector<uint8_t> decay_;  // 1 where weight decay applies (per element)
  std::vector<float> m_, v_;
};

}  // namespace lms::train
