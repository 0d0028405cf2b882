#include "core/train/optimizer.h"

#include <cmath>

namespace lms::train {

float LearningRate(const OptimConfig& c, int64_t step) {
  if (c.warmup_steps > 0 && step < c.warmup_steps) {
    return c.lr * static_cast<float>(step + 1) / static_cast<float>(c.warmup_steps);
  }
  const int64_t decay_steps = c.total_steps - c.warmup_steps;
  if (decay_steps <= 0 || step >= c.total_steps) return step >= c.total_steps ? c.min_lr : c.lr;
  const double progress = static_cast<double>(step - c.warmup_steps) / decay_steps;
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return static_cast<float>(c.min_lr + (c.lr - c.min_lr) * cosine);
}

namespace {
bool HasAvx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
}  // namespace

double SumSquares(const float* g, int64_t n) {
  if (HasAvx2()) return avx2::SumSquares(g, n);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += double{g[i]} * g[i];
  return s;
}

double GlobalNorm(const std::vector<float>& g) { return std::sqrt(SumSquares(g.data(), static_cast<int64_t>(g.size()))); }

AdamW::AdamW(const OptimConfig& c, const ParamLayout& layout)
    : c_(c), decay_(static_cast<size_t>(layout.total), 0), m_(decay_.size(), 0.0f), v_(decay_.size(), 0.0f) {
  for (const ParamTensor* t : layout.All()) {
    if (t->matrix) std::fill_n(decay_.begin() + t->offset, t->size(), uint8_t{1});
  }
}

double AdamW::Step(int64_t step, std::vector<float>& p, std::vector<float>& g) {
  const double norm = GlobalNorm(g);
  Update(step, p, g, 0, static_cast<int64_t>(p.size()), norm);
  return norm;
}

void AdamW::Update(int64_t step, std::vector<float>& p, std::vector<float>& g, int64_t begin, int64_t end,
                   double norm) {
  const float clip = (c_.grad_clip > 0.0f && norm > c_.grad_clip) ? static_cast<float>(c_.grad_clip / norm) : 1.0f;
  const float lr = LearningRate(c_, step);
  const int64_t t = step + 1;
  const float bc1 = 1.0f - static_cast<float>(std::pow(c_.beta1, t));
  const float bc2 = 1.0f - static_cast<float>(std::pow(c_.beta2, t));
  if (HasAvx2()) {
    const AdamWScalars s{clip, lr, c_.beta1, c_.beta2, bc1, bc2, c_.eps, c_.weight_decay};
    avx2::AdamWUpdate(s, p.data() + begin, g.data() + begin, m_.data() + begin, v_.data() + begin, decay_.data() + begin,
                      end - begin);
    return;
  }
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i] * clip;
    g[i] = gi;
    m_[i] = c_.beta1 * m_[i] + (1.0f - c_.beta1) * gi;
    v_[i] = c_.beta2 * v_[i] + (1.0f - c_.beta2) * gi * gi;
    const float mhat = m_[i] / bc1, vhat = v_[i] / bc2;
    p[i] -= lr * (mhat / (std::sqrt(vhat) + c_.eps) + (decay_[i] ? c_.weight_decay * p[i] : 0.0f));
  }
}

}  // namespace lms::train
