// The small model and engine specs the CUDA training tests share (lms_gpu_tests and
// lms_nccl_tests): 4 layers, d 64, GQA 4/2 heads, vocab 300, sequences of 16 tokens.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/train/pipeline.h"
#include "core/train/train_engine.h"
#include "gpu/train/cuda_train_engine.h"
#include "tests/core/train/train_test_util.h"

namespace lms::test {

inline lms::train::ModelShape EngineTestShape() {
  lms::train::ModelShape s;
  s.n_layers = 4;
  s.d_model = 64;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.d_ff = 96;
  s.n_vocab = 300;
  s.seq_len = 16;
  return s;
}

// `stages`·`chunks` equal layer ranges, M micro-batches of `mbs` sequences.
inline lms::train::TrainEngineSpec EngineTestSpec(const std::string& device, const std::string& precision, int stages,
                                                  int M, int mbs,
                                                  lms::train::ScheduleKind k = lms::train::ScheduleKind::k1F1B,
                                                  int chunks = 1) {
  lms::train::TrainEngineSpec sp;
  sp.shape = EngineTestShape();
  sp.optim.lr = 3e-3f;
  sp.optim.warmup_steps = 2;
  sp.optim.total_steps = 10;
  sp.pipeline.schedule = k;
  sp.pipeline.chunks = chunks;
  sp.pipeline.boundaries = lms::train::EqualSplit(sp.shape.n_layers, stages * chunks);
  sp.pipeline.microbatches = M;
  sp.pipeline.micro_batch_size = mbs;
  sp.device = device;
  sp.precision = precision;
  return sp;
}

// The test model's layout, random weights and a batch of 8 sequences (inputs and targets).
struct Fixture {
  lms::train::ParamLayout layout;
  std::vector<float> params;
  int64_t rows = 0;
  std::vector<int32_t> in, tg;
};

inline Fixture MakeFixture(uint64_t param_seed, uint64_t token_seed) {
  const lms::train::ModelShape shape = EngineTestShape();
  Fixture f{lms::train::ParamLayout::For(shape), {}, 8 * shape.seq_len, {}, {}};
  f.params = lms::train::test::RandomParams(shape, f.layout, param_seed, 0.08f);
  f.in = lms::train::test::RandomTokens(f.rows, shape.n_vocab, token_seed);
  f.tg = lms::train::test::RandomTokens(f.rows, shape.n_vocab, token_seed + 1);
  return f;
}

// What a few steps of an engine gave: per-step loss sums and gradient norms, the final weights.
struct EngineRun {
  Status status;  // the first failure, if any
  std::string describe;
  std::vector<double> losses, norms;
  std::vector<float> params;
};

// A CUDA engine on `gpus` set to `params`, then `steps` optimizer steps on one batch (rows
// tokens). No Catch assertions: rank threads call it.
inline EngineRun RunEngineSteps(const lms::train::TrainEngineSpec& sp, const lms::train::ParamLayout& layout,
                                const std::vector<int>& gpus, const std::vector<float>& params,
                                const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t rows,
                                int steps) {
  EngineRun o;
  auto e = gpu::train::CreateCudaTrainEngineOn(sp, layout, gpus);
  if (!e.ok()) {
    o.status = e.status();
    return o;
  }
  o.describe = (*e)->Describe();
  o.status = (*e)->SetState(params, nullptr, nullptr);
  for (int step = 0; step < steps && o.status.ok(); ++step) {
    o.status = (*e)->ZeroGrads();
    if (!o.status.ok()) break;
    auto r = (*e)->ForwardBackward(in.data(), tg.data(), 1.0f / static_cast<float>(rows));
    if (!r.ok()) {
      o.status = r.status();
      break;
    }
    o.losses.push_back(r->loss_sum);
    auto n = (*e)->OptimizerStep(step);
    if (!n.ok()) {
      o.status = n.status();
      break;
    }
    o.norms.push_back(*n);
  }
  if (o.status.ok()) o.status = (*e)->GetParams(o.params);
  return o;
}

// Every rank's run equals the one-process run: losses and norms to 1e-9 relative, weights to
// 1e-6 of the largest.
inline void CheckRanksMatch(const EngineRun& ref, const std::vector<EngineRun>& ranks) {
  for (size_t r = 0; r < ranks.size(); ++r) {
    CAPTURE(r);
    const EngineRun& o = ranks[r];
    INFO(o.status.ToString());
    REQUIRE(o.status.ok());
    REQUIRE(o.losses.size() == ref.losses.size());
    for (size_t i = 0; i < ref.losses.size(); ++i) {
      CHECK(o.losses[i] == Approx(ref.losses[i]).epsilon(1e-9));
      CHECK(o.norms[i] == Approx(ref.norms[i]).epsilon(1e-9));
    }
    REQUIRE(o.params.size() == ref.params.size());
    double err = 0, top = 0;
    for (size_t i = 0; i < ref.params.size(); ++i) {
      err = std::max(err, double{std::fabs(ref.params[i] - o.params[i])});
      top = std::max(top, double{std::fabs(ref.params[i])});
    }
    CHECK(err <= 1e-6 * top);
  }
}

}  // namespace lms::test
