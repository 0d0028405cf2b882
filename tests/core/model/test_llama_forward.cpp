// The forward pass against a plain double-precision reference, through the paged KV cache:
// one batch, token by token, several sequences in one batch, scattered blocks, quantized weights.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/kv/kv_cache.h"
#include "core/model/llama_forward.h"
#include "core/model/weights.h"
#include "tests/core/model/tiny_model.h"

namespace lms {
namespace {

struct Fixture {
  std::unique_ptr<gguf::GgufFile> file;
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  ModelWeights weights;
  std::unique_ptr<LlamaForward> forward;
  std::unique_ptr<KvCache> kv;

  Fixture(const test::TinySpec& spec, int threads, TensorType kv_type, int block_size = 4) {
    auto f = gguf::GgufFile::FromBytes(test::MakeTinyModel(spec));
    REQUIRE(f.ok());
    file = std::move(f).value();
    auto c = ReadModelConfig(*file);
    REQUIRE(c.ok());
    config = *c;
    backend = MakeCpuBackend({threads});
    auto w = LoadWeights(*file, config, *backend);
    REQUIRE(w.ok());
    weights = std::move(w).value();
    auto fw = LlamaForward::Create(config, weights, *backend, 32);
    REQUIRE(fw.ok());
    forward = std::move(fw).value();
    KvCacheOptions o;
    o.block_size = block_size;
    o.n_blocks = 64;
    o.type = kv_type;
    auto k = KvCache::Create(*backend, config, o);
    REQUIRE(k.ok());
    kv = std::make_unique<KvCache>(std::move(k).value());
  }

  // Runs `n` tokens of seq starting at its current length, returning logits of every token.
  std::vector<float> Step(KvSequence& seq, const std::vector<int32_t>& toks) {
    BatchLayout b;
    const int32_t start = seq.n_tokens;
    REQUIRE(kv->Reserve(seq, start + static_cast<int32_t>(toks.size())).ok());
    b.block_tables.push_back(seq.blocks);
    for (size_t i = 0; i < toks.size(); ++i) {
      b.tokens.push_back(toks[i]);
      b.positions.push_back(start + static_cast<int32_t>(i));
      b.seq_of_token.push_back(0);
      b.slots.push_back(kv->Slot(seq, start + static_cast<int32_t>(i)));
      b.logit_rows.push_back(static_cast<int32_t>(i));
    }
    std::vector<float> logits(toks.size() * config.n_vocab);
    REQUIRE(forward->Forward(b, *kv, logits.data()).ok());
    seq.n_tokens = start + static_cast<int32_t>(toks.size());
    return logits;
  }
};

double MaxRelErr(const std::vector<float>& got, const std::vector<std::vector<double>>& ref, int n_vocab) {
  double worst = 0, scale = 0;
  for (const auto& row : ref)
    for (double v : row) scale = std::max(scale, std::fabs(v));
  for (size_t t = 0; t < ref.size(); ++t)
    for (int i = 0; i < n_vocab; ++i) worst = std::max(worst, std::fabs(got[t * n_vocab + i] - ref[t][i]));
  return worst / scale;
}

const std::vector<int32_t> kTokens = {5, 17, 3, 42, 8, 8, 61, 0, 33, 12, 29};

}  // namespace

TEST_CASE("forward pass matches the double-precision reference (F32 weights, F32 cache)", "[forward]") {
  test::TinySpec spec;
  for (int threads : {1, 2}) {
    Fixture fx(spec, threads, TensorType::kF32);
    const auto ref = test::ReferenceLogits(*fx.file, spec, kTokens);
    KvSequence seq;
    const auto logits = fx.Step(seq, kTokens);
    INFO("threads " << threads);
    CHECK(MaxRelErr(logits, ref, spec.n_vocab) < 1e-4);
  }
}

TEST_CASE("token-by-token decoding equals one batch, across scattered cache blocks", "[forward]") {
  test::TinySpec spec;
  spec.arch = "qwen2";  // NeoX-style rope; biases are optional and absent here
  Fixture fx(spec, 2, TensorType::kF32, /*block_size=*/3);
  const auto ref = test::ReferenceLogits(*fx.file, spec, kTokens);
  // Take a few blocks first so the sequence's blocks are not contiguous.
  KvSequence other;
  REQUIRE(fx.kv->Reserve(other, 7).ok());
  KvSequence seq;
  std::vector<float> all;
  for (size_t i = 0; i < kTokens.size(); ++i) {
    if (i == 4) REQUIRE(fx.kv->Reserve(other, 14).ok());  // interleave allocations
    auto l = fx.Step(seq, {kTokens[i]});
    all.insert(all.end(), l.begin(), l.end());
  }
  CHECK(MaxRelErr(all, ref, spec.n_vocab) < 1e-4);
}

TEST_CASE("ForwardGreedy gives each logit row's first largest logit", "[forward]") {
  test::TinySpec spec;
  Fixture fx(spec, 2, TensorType::kF32);
  KvSequence seq;
  const auto logits = fx.Step(seq, kTokens);
  // The same tokens again over the same slots: the cache gets the same rows, so the same logits.
  BatchLayout b;
  b.block_tables.push_back(seq.blocks);
  for (size_t i = 0; i < kTokens.size(); ++i) {
    b.tokens.push_back(kTokens[i]);
    b.positions.push_back(static_cast<int32_t>(i));
    b.seq_of_token.push_back(0);
    b.slots.push_back(fx.kv->Slot(seq, static_cast<int32_t>(i)));
  }
  b.logit_rows = {10, 0, 4};
  std::vector<int32_t> ids(3, -1);
  REQUIRE(fx.forward->ForwardGreedy(b, *fx.kv, ids.data()).ok());
  for (size_t r = 0; r < 3; ++r) {
    const float* row = logits.data() + static_cast<size_t>(b.logit_rows[r]) * spec.n_vocab;
    CHECK(ids[r] == std::max_element(row, row + spec.n_vocab) - row);
  }
  // Ties go to the first column, and NaNs never win (the sampler's rule).
  auto t = fx.backend->Allocate(TensorType::kF32, 3, 5);
  REQUIRE(t.ok());
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  const float rows[15] = {1, 3, 3, 2, 3, nan, nan, 0.5f, nan, 0.5f, -inf, -inf, -inf, -inf, -inf};
  REQUIRE(fx.backend->CopyFromHost(rows, *t, sizeof rows).ok());
  REQUIRE(fx.backend->ArgMaxRows(*t, ids.data()).ok());
  CHECK(ids == std::vector<int32_t>{1, 2, 0});
  ids.assign(3, -1);
  REQUIRE(fx.backend->Backend::ArgMaxRows(*t, ids.data()).ok());  // the default, through CopyToHost
  CHECK(ids == std::vector<int32_t>{1, 2, 0});
}

TEST_CASE("f16 KV cache and Q8_0 weights stay close to the reference", "[forward]") {
  test::TinySpec spec;
  spec.matrix_type = TensorType::kQ8_0;
  spec.tied = false;
  Fixture fx(spec, 2, TensorType::kF16);
  const auto ref = test::ReferenceLogits(*fx.file, spec, kTokens);  // same quantized weights
  KvSequence seq;
  const auto logits = fx.Step(seq, kTokens);
  // Activations are quantized to 8 bits for the dot products and K/V stored in f16.
  CHECK(MaxRelErr(logits, ref, spec.n_vocab) < 2e-2);
}

TEST_CASE("a sequence's logits do not depend on what else is in the batch", "[forward][batch-invariance]") {
  test::TinySpec spec;
  spec.matrix_type = TensorType::kQ4_1;
  spec.d_model = 64;
  Fixture fx(spec, 2, TensorType::kF16);
  // Alone.
  KvSequence a;
  const auto alone_prefill = fx.Step(a, {1, 2, 3, 4, 5});
  const auto alone_next = fx.Step(a, {6});
  // Batched: b's prompt and a2's prompt share one forward, then both decode together.
  KvSequence a2, b;
  const std::vector<int32_t> a_toks = {1, 2, 3, 4, 5}, b_toks = {9, 8, 7};
  BatchLayout batch;
  REQUIRE(fx.kv->Reserve(b, 3).ok());
  REQUIRE(fx.kv->Reserve(a2, 5).ok());
  batch.block_tables = {b.blocks, a2.blocks};
  for (int i = 0; i < 3; ++i) {
    batch.tokens.push_back(b_toks[i]);
    batch.positions.push_back(i);
    batch.seq_of_token.push_back(0);
    batch.slots.push_back(fx.kv->Slot(b, i));
  }
  for (int i = 0; i < 5; ++i) {
    batch.tokens.push_back(a_toks[i]);
    batch.positions.push_back(i);
    batch.seq_of_token.push_back(1);
    batch.slots.push_back(fx.kv->Slot(a2, i));
    batch.logit_rows.push_back(3 + i);
  }
  std::vector<float> batched(5 * spec.n_vocab);
  REQUIRE(fx.forward->Forward(batch, *fx.kv, batched.data()).ok());
  a2.n_tokens = 5;
  b.n_tokens = 3;
  CHECK(batched == alone_prefill);  // bit-identical

  BatchLayout step;
  REQUIRE(fx.kv->Reserve(a2, 6).ok());
  REQUIRE(fx.kv->Reserve(b, 4).ok());
  step.block_tables = {a2.blocks, b.blocks};
  step.tokens = {6, 7};
  step.positions = {5, 3};
  step.seq_of_token = {0, 1};
  step.slots = {fx.kv->Slot(a2, 5), fx.kv->Slot(b, 3)};
  step.logit_rows = {0, 1};
  std::vector<float> both(2 * spec.n_vocab);
  REQUIRE(fx.forward->Forward(step, *fx.kv, both.data()).ok());
  CHECK(std::vector<float>(both.begin(), both.begin() + spec.n_vocab) == alone_next);
}

TEST_CASE("bad token ids are reported, not read out of bounds", "[forward]") {
  test::TinySpec spec;
  Fixture fx(spec, 1, TensorType::kF32);
  KvSequence seq;
  REQUIRE(fx.kv->Reserve(seq, 1).ok());
  BatchLayout b;
  b.tokens = {spec.n_vocab + 5};
  b.positions = {0};
  b.seq_of_token = {0};
  b.slots = {fx.kv->Slot(seq, 0)};
  b.block_tables = {seq.blocks};
  b.logit_rows = {0};
  std::vector<float> logits(spec.n_vocab);
  Status s = fx.forward->Forward(b, *fx.kv, logits.data());
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("outside the vocabulary") != std::string::npos);
}

}  // namespace lms
