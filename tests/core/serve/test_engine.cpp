// The serving engine on a tiny random model written by our GGUF writer: greedy tokens equal
// single-sequence generation (the `run` path) whether a request runs alone, batched with others,
// chunked, preempted and recomputed, or served from the prefix cache; n > 1 forks; cancel.
#include <catch2/catch.hpp>

#include <map>
#include <thread>

#include "core/model/generate.h"
#include "core/model/model.h"
#include "core/serve/engine.h"
#include "tests/core/model/tiny_loaded.h"
#include "tests/test_support.h"

namespace lms::serve {
namespace {

using Tiny = test::TinyLoaded;

Tiny LoadTiny(TensorType type) {
  test::TinySpec spec;
  spec.matrix_type = type;
  spec.n_vocab = 96;
  return test::LoadTinyOnCpu(spec, "serve-tiny-" + std::to_string(static_cast<int>(type)) + ".gguf");
}

std::vector<int32_t> Prompt(int n, int seed) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = (seed * 31 + i * 7 + i * i) % 90;
  return p;
}

RequestParams Greedy(int max_tokens) {
  RequestParams p;
  p.sampling.temperature = 0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  return p;
}

// The `run` path: one Session, Generate.
std::vector<int32_t> Reference(const Tiny& t, const std::vector<int32_t>& prompt, const RequestParams& p) {
  SessionOptions so;
  so.n_ctx = 256;
  auto s = Session::Create(*t.model, *t.backend, so);
  REQUIRE(s.ok());
  Sampler sampler(p.sampling);
  GenerateOptions go;
  go.max_tokens = p.max_tokens;
  go.ignore_eos = p.ignore_eos;
  auto r = Generate(**s, sampler, prompt, go);
  REQUIRE(r.ok());
  return r->tokens;
}

struct Collected {
  std::map<int, std::vector<int32_t>> tokens;  // per choice
  std::map<int, std::string> text, finish;
  std::vector<StreamEvent> events;
};

// Drives the core until every channel is done.
std::vector<Collected> RunAll(EngineCore& core, const std::vector<Request>& reqs, int max_steps = 100000) {
  std::vector<std::shared_ptr<RequestChannel>> chans;
  for (const auto& r : reqs) {
    chans.push_back(std::make_shared<RequestChannel>(r.params.n));
    REQUIRE(core.Add(r, chans.back()).ok());
  }
  for (int i = 0; i < max_steps && core.HasWork(); ++i) REQUIRE(core.Step().ok());
  CHECK_FALSE(core.HasWork());
  std::vector<Collected> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    StreamEvent e;
    while (chans[i]->Next(e, std::chrono::milliseconds(0))) {
      if (e.token >= 0) out[i].tokens[e.index].push_back(e.token);
      out[i].text[e.index] += e.text;
      if (!e.finish_reason.empty()) out[i].finish[e.index] = e.finish_reason;
      out[i].events.push_back(e);
    }
    CHECK(chans[i]->done());
  }
  return out;
}

EngineOptions SmallOptions() {
  EngineOptions o;
  o.block_size = 4;
  o.token_budget = 16;
  o.max_running = 8;
  o.n_ctx = 256;
  return o;
}

}  // namespace

TEST_CASE("engine: greedy tokens are the same alone, batched with others and as in run", "[serve][engine][invariance]") {
  for (TensorType type : {TensorType::kF32, TensorType::kQ8_0}) {
    CAPTURE(static_cast<int>(type));
    Tiny t = LoadTiny(type);
    const std::vector<int> lengths = {5, 23, 40, 3, 61, 17};
    std::vector<Request> reqs;
    for (size_t i = 0; i < lengths.size(); ++i) reqs.push_back({Prompt(lengths[i], static_cast<int>(i)), Greedy(24)});
    // Batched: six requests through a 16-token budget, so prompt chunks and decodes share forwards.
    auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
    REQUIRE(core.ok());
    auto batched = RunAll(**core, reqs);
    CHECK((*core)->Metrics().steps > 0);
    CHECK((*core)->Metrics().greedy_id_steps > 0);  // plain greedy: only ids came back
    for (size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(i);
      const auto ref = Reference(t, reqs[i].prompt, reqs[i].params);
      REQUIRE(ref.size() == 24);
      CHECK(batched[i].tokens[0] == ref);
      CHECK(batched[i].finish[0] == "length");
      // Alone, in a fresh engine.
      auto solo = EngineCore::Create(*t.model, *t.backend, SmallOptions());
      REQUIRE(solo.ok());
      auto alone = RunAll(**solo, {reqs[i]});
      CHECK(alone[0].tokens[0] == ref);
    }
    CHECK((*core)->blocks().n_used() == 0);
  }
}

// Plain greedy choices take the ids-only forward (Backend::ArgMaxRows); greedy with a penalty or
// logprobs needs the logits. Mixed in one batch, each still gets the tokens of `run`.
TEST_CASE("engine: greedy with and without penalties or logprobs, batched together", "[serve][engine][invariance]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  RequestParams plain = Greedy(20), logprobs = Greedy(20), penalised = Greedy(20);
  logprobs.logprobs = 2;
  penalised.sampling.repeat_penalty = 1.3f;
  const std::vector<Request> reqs = {{Prompt(9, 1), plain}, {Prompt(30, 2), logprobs}, {Prompt(14, 3), penalised}};
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(core.ok());
  auto got = RunAll(**core, reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens[0] == Reference(t, reqs[i].prompt, reqs[i].params));
  }
  for (const StreamEvent& e : got[1].events) {
    if (e.token >= 0) CHECK(e.has_logprobs);
  }
  // Alone, the logprobs request never takes the ids-only forward; the plain one always does.
  auto solo = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(solo.ok());
  RunAll(**solo, {reqs[1]});
  CHECK((*solo)->Metrics().greedy_id_steps == 0);
  auto solo_plain = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(solo_plain.ok());
  RunAll(**solo_plain, {reqs[0]});
  CHECK((*solo_plain)->Metrics().greedy_id_steps == 20);  // one a generated token
}

TEST_CASE("engine: preempted requests recompute and still produce the same tokens", "[serve][engine][preempt]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  EngineOptions o = SmallOptions();
  o.kv_bytes = 40 * 1024;  // 40 blocks of 4 tokens (2 layers * K,V * 4 tokens * 32 dims * 2 bytes)
  o.token_budget = 64;
  auto core = EngineCore::Create(*t.model, *t.backend, o);
  REQUIRE(core.ok());
  CHECK((*core)->max_seq_len() == 160);
  std::vector<Request> reqs;
  for (int i = 0; i < 5; ++i) reqs.push_back({Prompt(30 + 5 * i, 10 + i), Greedy(40)});
  auto got = RunAll(**core, reqs);
  const EngineMetrics m = (*core)->Metrics();
  CHECK(m.preemptions > 0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i].tokens[0] == Reference(t, reqs[i].prompt, reqs[i].params));
  }
  CHECK(m.kv_blocks_used == 0);
  CHECK(m.requests_finished == 5);
}

TEST_CASE("engine: a repeated prompt is served from the prefix cache with the same tokens", "[serve][engine][prefix]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(core.ok());
  Request r{Prompt(50, 3), Greedy(10)};
  auto first = RunAll(**core, {r});
  CHECK((*core)->Metrics().prefix_hit_tokens == 0);
  const uint64_t computed = (*core)->Metrics().computed_tokens;
  // A second turn: the first prompt, its answer, and more.
  Request turn2 = r;
  turn2.prompt.insert(turn2.prompt.end(), first[0].tokens[0].begin(), first[0].tokens[0].end());
  turn2.prompt.push_back(7);
  auto second = RunAll(**core, {r, turn2});
  const EngineMetrics m = (*core)->Metrics();
  CHECK(second[0].tokens[0] == first[0].tokens[0]);
  CHECK(second[1].tokens[0] == Reference(t, turn2.prompt, turn2.params));
  CHECK(second[1].events.back().cached_prompt_tokens == 56);  // 14 full blocks of 61 tokens
  CHECK(m.prefix_hit_tokens >= 48 + 56);
  CHECK(m.computed_tokens - computed < 2 * 61 + 20);
  CHECK(m.prefix_hit_rate() > 0.5);
}

TEST_CASE("engine: n choices fork from one prompt; choice i equals a single request with seed + i", "[serve][engine][fork]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  RequestParams p;
  p.sampling.temperature = 30.0f;  // the tiny random model is very peaked
  p.sampling.top_k = 0;
  p.sampling.min_p = 0;
  p.sampling.top_p = 1;
  p.sampling.seed = 1234;
  p.max_tokens = 20;
  p.ignore_eos = true;
  p.n = 3;
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(core.ok());
  Request r{Prompt(37, 5), p};  // 37 tokens: the last prompt block is partial and shared (COW)
  auto got = RunAll(**core, {r});
  REQUIRE(got[0].tokens.size() == 3);
  CHECK((*core)->Metrics().computed_tokens == 37 + 3 * 19);  // the prompt ran once, then 3 decodes
  CHECK(got[0].tokens[0] != got[0].tokens[1]);
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    RequestParams single = p;
    single.n = 1;
    single.sampling.seed = p.sampling.seed + i;
    CHECK(got[0].tokens[i] == Reference(t, r.prompt, single));
    CHECK(got[0].finish[i] == "length");
  }
  CHECK((*core)->blocks().n_used() == 0);
}

TEST_CASE("engine: stop strings, stop tokens, max_tokens and logprobs", "[serve][engine]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(core.ok());
  Request base{Prompt(12, 9), Greedy(16)};
  auto free_run = RunAll(**core, {base});
  const auto& toks = free_run[0].tokens[0];
  const std::string text = free_run[0].text[0];
  REQUIRE(toks.size() == 16);
  CHECK(text == t.model->tokenizer().Decode(toks));
  // Stop token: the 6th generated token ends the choice before it.
  Request st = base;
  st.params.stop_token_ids = {toks[5]};
  size_t first = std::find(toks.begin(), toks.end(), toks[5]) - toks.begin();
  // Stop string: the text of tokens 3..4; the output ends right before it.
  Request ss = base;
  const std::string piece = t.model->tokenizer().Decode(std::vector<int32_t>(toks.begin() + 3, toks.begin() + 5));
  ss.params.stop = {piece};
  // Logprobs: greedy picks the top token, so its logprob is the first top entry's.
  Request lp = base;
  lp.params.logprobs = 3;
  auto got = RunAll(**core, {st, ss, lp});
  CHECK(got[0].tokens[0] == std::vector<int32_t>(toks.begin(), toks.begin() + first));
  CHECK(got[0].finish[0] == "stop");
  CHECK(got[1].text[0] == text.substr(0, text.find(piece)));
  CHECK(got[1].finish[0] == "stop");
  int checked = 0;
  for (const auto& e : got[2].events) {
    if (e.token < 0) continue;
    REQUIRE(e.has_logprobs);
    REQUIRE(e.logprobs.top.size() == 3);
    CHECK(e.logprobs.top[0].token == e.token);
    CHECK(e.logprobs.top[0].logprob == Approx(e.logprobs.logprob).margin(1e-5));
    CHECK(e.logprobs.logprob <= 0);
    CHECK(e.logprobs.top[1].logprob <= e.logprobs.top[0].logprob);
    ++checked;
  }
  CHECK(checked == 16);
  CHECK(got[2].events.back().completion_tokens == 16);
  CHECK(got[2].events.back().prompt_tokens == 12);
}

TEST_CASE("engine: bad requests are refused naming the problem", "[serve][engine]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(core.ok());
  Request empty{{}, Greedy(4)};
  CHECK((*core)->Check(empty).code() == StatusCode::kInvalidArgument);
  Request too_long{Prompt(256, 1), Greedy(4)};
  CHECK((*core)->Check(too_long).code() == StatusCode::kOutOfRange);
  Request bad_token{{1, 2, 500}, Greedy(4)};
  CHECK((*core)->Check(bad_token).message().find("500") != std::string::npos);
  Request bad_n{{1, 2}, Greedy(4)};
  bad_n.params.n = 0;
  CHECK((*core)->Check(bad_n).message().find("n ") != std::string::npos);
  Request bad_temp{{1, 2}, Greedy(4)};
  bad_temp.params.sampling.temperature = -1;
  CHECK((*core)->Check(bad_temp).message().find("temperature") != std::string::npos);
}

TEST_CASE("engine: a cancelled request frees its blocks within one step", "[serve][engine][cancel]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());
  REQUIRE(core.ok());
  auto keep = std::make_shared<RequestChannel>(1);
  auto drop = std::make_shared<RequestChannel>(2);
  Request a{Prompt(20, 1), Greedy(100)};
  Request b{Prompt(30, 2), Greedy(100)};
  b.params.n = 2;
  REQUIRE((*core)->Add(a, keep).ok());
  REQUIRE((*core)->Add(b, drop).ok());
  for (int i = 0; i < 8; ++i) REQUIRE((*core)->Step().ok());
  const int64_t both = (*core)->blocks().n_used();
  drop->Cancel();
  REQUIRE((*core)->Step().ok());
  const int64_t one = (*core)->blocks().n_used();
  CHECK(one < both);
  // Only `keep` holds blocks: its prompt took 2 steps (16 + 4 tokens), then one decode per step
  // for 7 steps: 27 computed positions.
  CHECK(one == (27 + 3) / 4);
  std::map<int, std::string> finish;
  StreamEvent e;
  while (drop->Next(e, std::chrono::milliseconds(0)))
    if (!e.finish_reason.empty()) finish[e.index] = e.finish_reason;
  CHECK(finish == std::map<int, std::string>{{0, "cancelled"}, {1, "cancelled"}});
  CHECK(drop->done());
  keep->Cancel();
  REQUIRE((*core)->Step().ok());
  CHECK((*core)->blocks().n_used() == 0);
  CHECK_FALSE((*core)->HasWork());
  CHECK((*core)->Metrics().requests_cancelled == 2);
}

TEST_CASE("engine: KV fill counts the tokens held by the blocks in use, shared blocks once", "[serve][engine][metrics]") {
  Tiny t = LoadTiny(TensorType::kF32);
  auto core = EngineCore::Create(*t.model, *t.backend, SmallOptions());  // blocks of 4, 16 tokens a step
  REQUIRE(core.ok());
  RequestParams two = Greedy(3);
  two.n = 2;
  auto a = std::make_shared<RequestChannel>(2), b = std::make_shared<RequestChannel>(1);
  REQUIRE((*core)->Add({Prompt(10, 1), two}, a).ok());
  REQUIRE((*core)->Add({Prompt(6, 2), Greedy(3)}, b).ok());
  CHECK((*core)->Metrics().kv_fill() == 0.0);  // nothing in use yet
  // Step 1 reads both prompts (10 + 6 = the budget): A's blocks hold 4+4+2, shared by its two
  // choices after the fork; B's hold 4+2.
  REQUIRE((*core)->Step().ok());
  EngineMetrics m = (*core)->Metrics();
  CHECK(m.kv_blocks_used == 5);
  CHECK(m.kv_tokens_held == 16);
  CHECK(m.kv_fill() == Approx(16.0 / 20.0));
  // Step 2 writes one token per choice: the first choice copies A's shared last block (3 tokens
  // each now), B's last block reaches 3.
  REQUIRE((*core)->Step().ok());
  m = (*core)->Metrics();
  CHECK(m.kv_blocks_used == 6);
  CHECK(m.kv_tokens_held == 4 + 4 + 3 + 3 + 4 + 3);
  CHECK(m.kv_fill() == Approx(21.0 / 24.0));
  (*core)->CancelAll();
  CHECK((*core)->Metrics().kv_blocks_used == 0);
  CHECK((*core)->Metrics().kv_tokens_held == 0);
}

TEST_CASE("engine thread: concurrent submitters get the same tokens; queue limit", "[serve][engine][thread]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  EngineOptions o = SmallOptions();
  o.max_waiting = 64;
  auto engine = Engine::Start(*t.model, *t.backend, o);
  REQUIRE(engine.ok());
  constexpr int kThreads = 4, kPer = 3;
  std::vector<std::vector<int32_t>> got(kThreads * kPer);
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      for (int k = 0; k < kPer; ++k) {
        const int i = th * kPer + k;
        auto ch = (*engine)->Submit({Prompt(10 + i, i), Greedy(12)});
        if (!ch.ok()) continue;
        StreamEvent e;
        while (!(*ch)->done()) {
          if ((*ch)->Next(e, std::chrono::milliseconds(100)) && e.token >= 0) got[i].push_back(e.token);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < kThreads * kPer; ++i) {
    CAPTURE(i);
    CHECK(got[i] == Reference(t, Prompt(10 + i, i), Greedy(12)));
  }
  EngineMetrics m = (*engine)->Metrics();
  CHECK(m.requests_finished == kThreads * kPer);
  CHECK(m.kv_blocks_used == 0);
  CHECK(m.ttft_s.count == kThreads * kPer);
  CHECK(m.generation_tokens == kThreads * kPer * 12u);
}

TEST_CASE("engine thread: a full queue refuses with ResourceExhausted", "[serve][engine][thread]") {
  Tiny t = LoadTiny(TensorType::kQ8_0);
  EngineOptions o = SmallOptions();
  o.max_waiting = 2;
  o.max_running = 1;
  auto engine = Engine::Start(*t.model, *t.backend, o);
  REQUIRE(engine.ok());
  std::vector<std::shared_ptr<RequestChannel>> chans;
  bool refused = false;
  for (int i = 0; i < 20 && !refused; ++i) {
    auto ch = (*engine)->Submit({Prompt(10, i), Greedy(200)});
    if (ch.ok()) {
      chans.push_back(*ch);
    } else {
      CHECK(ch.status().code() == StatusCode::kResourceExhausted);
      refused = true;
    }
  }
  CHECK(refused);
  for (auto& c : chans) c->Cancel();
  for (auto& c : chans) {
    StreamEvent e;
    while (!c->done()) c->Next(e, std::chrono::milliseconds(50));
  }
}

}  // namespace lms::serve

namespace lms::serve {

TEST_CASE("engine: SmolLM2 greedy tokens batched equal single-sequence generation, f16 and q8_0 KV", "[serve][engine][invariance][model]") {
  auto path = test::DefaultModelPath();
  if (!path) LMS_SKIP("the default model has not been pulled");
  auto backend = MakeCpuBackend({2});
  auto model = Model::Load(*path, *backend);
  REQUIRE(model.ok());
  const Tokenizer& tok = (*model)->tokenizer();
  const std::vector<std::string> texts = {
      "The capital of France is", "Write a haiku about the sea.\n",
      "def fibonacci(n):", "Once upon a time, in a small village by the mountains, there lived"};
  std::vector<Request> reqs;
  for (const auto& t : texts) reqs.push_back({tok.Encode(t, true, false), Greedy(16)});
  for (TensorType kv : {TensorType::kF16, TensorType::kQ8_0}) {
    CAPTURE(TensorTypeName(kv));
    EngineOptions o;
    o.token_budget = 24;  // prompts arrive in chunks beside other requests' decodes
    o.max_running = 4;
    o.n_ctx = 512;
    o.kv_type = kv;
    auto core = EngineCore::Create(**model, *backend, o);
    REQUIRE(core.ok());
    auto got = RunAll(**core, reqs);
    for (size_t i = 0; i < reqs.size(); ++i) {
      CAPTURE(texts[i]);
      SessionOptions so;
      so.n_ctx = 512;
      so.kv_type = kv;
      auto s = Session::Create(**model, *backend, so);
      REQUIRE(s.ok());
      Sampler sampler(reqs[i].params.sampling);
      GenerateOptions go;
      go.max_tokens = 16;
      go.ignore_eos = true;
      auto r = Generate(**s, sampler, reqs[i].prompt, go);
      REQUIRE(r.ok());
      CHECK(got[i].tokens[0] == r->tokens);
      CHECK(got[i].text[0] == r->text);
    }
  }
}

}  // namespace lms::serve
