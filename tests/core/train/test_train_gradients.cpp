// The training model's gradients against finite differences, its loss at initialisation, and
// its ability to overfit a tiny batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/train/optimizer.h"
#include "tests/core/train/train_test_util.h"

using namespace lms;
using namespace lms::train;
using namespace lms::train::test;

namespace {

void CheckFiniteDifferences(const ModelShape& s) {
  const ParamLayout layout = ParamLayout::For(s);
  const int B = 2;
  std::vector<float> p = RandomParams(s, layout, 11, 0.3f);
  auto in = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 5);
  auto tg = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 6);
  tg[3] = -1;  // an ignored position
  const LossAndGrads base = SingleStage(s, layout, p, in, tg, B);
  std::mt19937_64 rng(3);
  int checked = 0;
  for (const ParamTensor* t : layout.All()) {
    // The three largest analytic gradients of the tensor and three random elements.
    std::vector<int64_t> idx(t->size());
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + 3, idx.end(), [&](int64_t a, int64_t b) {
      return std::fabs(base.grads[t->offset + a]) > std::fabs(base.grads[t->offset + b]);
    });
    idx.resize(3);
    for (int i = 0; i < 3; ++i) idx.push_back(static_cast<int64_t>(rng() % t->size()));
    for (int64_t i : idx) {
      const int64_t at = t->offset + i;
      // The loss is computed in fp32: a step of 1e-3 leaves rounding noise of ~2e-4 in the
      // difference quotient, about the absolute tolerance; 4e-3 keeps it well below.
      const float h = 4e-3f * std::max(1.0f, std::fabs(p[at]));
      std::vector<float> q = p;
      q[at] = p[at] + h;
      const double up = SingleStage(s, layout, q, in, tg, B, false).loss;
      q[at] = p[at] - h;
      const double down = SingleStage(s, layout, q, in, tg, B, false).loss;
      const double fd = (up - down) / (2.0 * h);
      const double an = base.grads[at];
      INFO(t->name << "[" << i << "] analytic " << an << " finite-difference " << fd);
      CHECK(std::fabs(fd - an) <= 0.03 * std::fabs(an) + 2e-4);
      ++checked;
    }
  }
  CHECK(checked == 6 * static_cast<int>(layout.All().size()));
}

}  // namespace

TEST_CASE("train: finite differences match every parameter tensor's gradient", "[train]") {
  ModelShape s = TinyShape();
  s.n_layers = 2;
  SECTION("tied embedding, llama rotary pairs") { CheckFiniteDifferences(s); }
  SECTION("untied head, NeoX rotary pairs, no GQA") {
    s.tied = false;
    s.rope_neox = true;
    s.n_kv_heads = s.n_heads;
    CheckFiniteDifferences(s);
  }
}

TEST_CASE("train: loss at initialisation is about ln(vocab)", "[train]") {
  ModelShape s = TinyShape();
  s.n_vocab = 256;
  s.d_model = 64;
  s.seq_len = 16;
  const ParamLayout layout = ParamLayout::For(s);
  std::vector<float> p;
  InitParams(s, layout, 42, p);
  const int B = 16;
  auto in = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 1);
  auto tg = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 2);
  const double loss = SingleStage(s, layout, p, in, tg, B, false).loss;
  // Small logits (std ≈ 0.02·√d after the norm) add about σ²/2 ≈ 0.01 to ln V; sampling noise
  // over 256 tokens is about 0.01.
  INFO("loss " << loss << " ln(256) " << std::log(256.0));
  CHECK(std::fabs(loss - std::log(256.0)) < 0.05);
}

TEST_CASE("train: seeded initialisation is reproducible and seed-dependent", "[train]") {
  const ModelShape s = TinyShape();
  const ParamLayout layout = ParamLayout::For(s);
  std::vector<float> a, b, c;
  InitParams(s, layout, 1, a);
  InitParams(s, layout, 1, b);
  InitParams(s, layout, 2, c);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a[layout.layers[0].attn_norm.offset] == 1.0f);
}

TEST_CASE("train: a tiny batch overfits to near zero loss", "[train]") {
  const ModelShape s = TinyShape();
  const ParamLayout layout = ParamLayout::For(s);
  std::vector<float> p;
  InitParams(s, layout, 9, p);
  const int B = 2;
  auto in = RandomTokens(int64_t{B} * s.seq_len, s.n_vocab, 3);
  std::vector<int32_t> tg(in.begin() + 1, in.end());
  tg.push_back(0);
  OptimConfig oc;
  oc.lr = 1e-2f;
  oc.min_lr = 1e-3f;
  oc.warmup_steps = 5;
  oc.total_steps = 300;
  oc.weight_decay = 0.0f;
  AdamW opt(oc, layout);
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    LossAndGrads r = SingleStage(s, layout, p, in, tg, B);
    if (step == 0) first = r.loss;
    last = r.loss;
    opt.Step(step, p, r.grads);
  }
  INFO("first " << first << " last " << last);
  CHECK(first > 3.0);
  CHECK(last < 0.05);
}

TEST_CASE("train: learning-rate schedule warms up then follows a cosine", "[train]") {
  OptimConfig c;
  c.lr = 1.0f;
  c.min_lr = 0.1f;
  c.warmup_steps = 4;
  c.total_steps = 14;
  CHECK(LearningRate(c, 0) == Approx(0.25));
  CHECK(LearningRate(c, 3) == Approx(1.0));
  CHECK(LearningRate(c, 4) == Approx(1.0));
  CHECK(LearningRate(c, 9) == Approx(0.55));  // halfway down the cosine
  CHECK(LearningRate(c, 14) == Approx(0.1));
  CHECK(LearningRate(c, 100) == Approx(0.1));
}

TEST_CASE("train: AdamW clips by global norm and decays matrices only", "[train]") {
  const ModelShape s = TinyShape();
  const ParamLayout layout = ParamLayout::For(s);
  std::vector<float> p(static_cast<size_t>(layout.total), 1.0f), g(p.size(), 0.0f);
  OptimConfig c;
  c.lr = 0.1f;
  c.warmup_steps = 0;
  c.total_steps = 1;
  c.weight_decay = 0.5f;
  c.grad_clip = 1.0f;
  g[0] = 30.0f;
  g[1] = 40.0f;
  AdamW opt(c, layout);
  const double norm = opt.Step(0, p, g);
  CHECK(norm == Approx(50.0));
  CHECK(g[0] == Approx(0.6f));  // clipped to unit norm
  CHECK(g[1] == Approx(0.8f));
  // Zero gradient: a matrix element only decays, a norm weight stays.
  const int64_t mat = layout.layers[0].wq.offset, vec = layout.layers[0].attn_norm.offset;
  CHECK(p[mat] == Approx(1.0f - 0.1f * 0.5f));
  CHECK(p[vec] == 1.0f);
  // First Adam step moves a gradient-carrying element by about lr (m̂/√v̂ = ±1).
  CHECK(p[0] == Approx(1.0f - 0.1f * (1.0f + 0.5f)).epsilon(1e-4));
}
