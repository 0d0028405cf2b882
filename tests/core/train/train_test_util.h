// Helpers shared by the training tests: a tiny model shape, random batches, and a direct
// single-stage forward/backward to compare pipelines against.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/train/pipeline.h"
#include "core/train/train_model.h"

namespace lms::train::test {

inline ModelShape TinyShape() {
  ModelShape s;
  s.n_layers = 4;
  s.d_model = 32;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.d_ff = 48;
  s.n_vocab = 40;
  s.seq_len = 8;
  return s;
}

inline std::vector<int32_t> RandomTokens(int64_t n, int32_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = dist(rng);
  return t;
}

// Params with a larger spread than the training init, so every gradient is well above fp32
// noise in finite differences.
inline std::vector<float> RandomParams(const ModelShape& s, const ParamLayout& layout, uint64_t seed, float stddev) {
  std::vector<float> p;
  InitParams(s, layout, seed, p);
  std::mt19937_64 rng(seed + 7);
  std::normal_distribution<float> dist(0.0f, stddev);
  for (const ParamTensor* t : layout.All()) {
    for (int64_t i = 0; i < t->size(); ++i) {
      p[t->offset + i] = t->matrix ? dist(rng) : 1.0f + 0.2f * dist(rng);
    }
  }
  return p;
}

struct LossAndGrads {
  double loss = 0;  // mean over tokens
  std::vector<float> grads;
  std::vector<float> logits;
};

// One Stage over all layers and the whole batch (B sequences): no pipeline, no micro-batches.
inline LossAndGrads SingleStage(const ModelShape& s, const ParamLayout& layout, const std::vector<float>& p,
                                const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int B,
                                bool want_grads = true, int threads = 1) {
  ThreadPool pool(threads);
  Stage st(s, layout, 0, s.n_layers, true, true, B, &pool);
  st.set_capture_logits(true);
  LossAndGrads r;
  int64_t count = 0;
  for (int32_t t : tg) count += t >= 0;
  LossSum ls;
  Status fs = st.Forward(0, p.data(), in.data(), nullptr, tg.data(), 1.0f / static_cast<float>(count), nullptr, &ls);
  if (!fs.ok()) throw std::runtime_error(fs.ToString());
  r.loss = ls.sum / static_cast<double>(ls.count);
  r.logits = st.captured_logits();
  r.grads.assign(p.size(), 0.0f);
  if (want_grads) {
    Status bs = st.Backward(0, p.data(), nullptr, r.grads.data(), r.grads.data() + layout.Head().offset, nullptr);
    if (!bs.ok()) throw std::runtime_error(bs.ToString());
  } else {
    st.Release(0);
  }
  return r;
}

}  // namespace lms::train::test
