// Generation with plain greedy sampling takes each token as the backend's argmax
// (Session::FeedGreedy, so a GPU returns ids, not logits): the same tokens as the sampler's
// greedy choice on the logits, with and without prefix reuse and over prompts fed in chunks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/model/generate.h"
#include "core/model/session.h"
#include "core/sample/sampler.h"
#include "tests/core/model/tiny_loaded.h"

namespace lms {
namespace {

using Tiny = test::TinyLoaded;

Tiny LoadTiny() {
  test::TinySpec spec;
  spec.n_vocab = 96;
  spec.seed = 7;
  return test::LoadTinyOnCpu(spec, "generate-tiny.gguf");
}

std::unique_ptr<Session> NewSession(const Tiny& t, int32_t n_batch) {
  SessionOptions so;
  so.n_ctx = 256;
  so.n_batch = n_batch;
  auto s = Session::Create(*t.model, *t.backend, so);
  REQUIRE(s.ok());
  return std::move(s).value();
}

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = (seed * 37 + i * 11 + i * i) % 90;
  return p;
}

}  // namespace

TEST_CASE("FeedGreedy returns the first maximum of the logits Feed gives", "[generate]") {
  const Tiny t = LoadTiny();
  for (int32_t n_batch : {4, 64}) {  // 4: the prompt goes in chunks
    CAPTURE(n_batch);
    auto a = NewSession(t, n_batch), b = NewSession(t, n_batch);
    std::vector<int32_t> tokens = Prompt(10, 3);
    for (int step = 0; step < 6; ++step) {
      REQUIRE(a->Feed(tokens).ok());
      const auto logits = a->last_logits();
      REQUIRE(logits.size() == 96);
      const int32_t want = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      auto got = b->FeedGreedy(tokens);
      REQUIRE(got.ok());
      CHECK(*got == want);
      CHECK(b->last_logits().empty());  // no logits came back
      CHECK(b->history() == a->history());
      tokens = {want};
    }
    // A later Feed brings logits back.
    REQUIRE(b->Feed(tokens).ok());
    CHECK(b->last_logits().size() == 96);
    CHECK_FALSE(b->FeedGreedy({}).ok());
  }
}

TEST_CASE("plain greedy generation gives the sampler's tokens without reading logits", "[generate]") {
  const Tiny t = LoadTiny();
  SamplingParams greedy;
  greedy.temperature = 0;
  SamplingParams penalised = greedy;  // not plain: the sampler path either way
  penalised.repeat_penalty = 1.3f;
  for (const SamplingParams& sp : {greedy, penalised}) {
    for (bool reuse : {false, true}) {
      CAPTURE(sp.plain_greedy(), reuse);
      std::vector<GenerateResult> results;
      for (bool ids : {true, false}) {
        auto s = NewSession(t, 4);
        std::vector<int32_t> tokens;
        for (int turn = 0; turn < 2; ++turn) {  // a second turn re-sends the first (prefix reuse)
          const auto more = Prompt(9 + turn, turn + 1);
          tokens.insert(tokens.end(), more.begin(), more.end());
          Sampler sampler(sp);
          GenerateOptions go;
          go.max_tokens = 12;
          go.ignore_eos = true;
          go.reuse_prefix = reuse;
          go.greedy_ids = ids;
          auto r = Generate(*s, sampler, tokens, go);
          REQUIRE(r.ok());
          results.push_back(*r);
          tokens.insert(tokens.end(), r->tokens.begin(), r->tokens.end());
        }
      }
      REQUIRE(results.size() == 4);
      for (int turn = 0; turn < 2; ++turn) {
        const GenerateResult &with_ids = results[static_cast<size_t>(turn)],
                             &with_logits = results[static_cast<size_t>(2 + turn)];
        CHECK(with_ids.tokens.size() == 12);
        CHECK(with_ids.tokens == with_logits.tokens);
        CHECK(with_ids.text == with_logits.text);
        CHECK(with_ids.evaluated_prompt_tokens == with_logits.evaluated_prompt_tokens);
        if (reuse && turn == 1) CHECK(with_ids.evaluated_prompt_tokens < with_ids.prompt_tokens);
      }
    }
  }
}

}  // namespace lms
