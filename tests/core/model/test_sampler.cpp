#include <catch2/catch.hpp>

#include <map>

#include "core/model/generate.h"
#include "core/sample/sampler.h"

namespace lms {

TEST_CASE("greedy picks the first maximum", "[sampler]") {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f};
  CHECK(s.Sample(logits) == 1);
}

TEST_CASE("same seed gives the same draws; different seeds differ", "[sampler]") {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = static_cast<float>((i * 37) % 17) * 0.3f;
  auto draw = [&](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.Sample(logits));
    return out;
  };
  CHECK(draw(7) == draw(7));
  CHECK(draw(7) != draw(8));
}

TEST_CASE("top-k, top-p and min-p restrict the candidates", "[sampler]") {
  std::vector<float> logits = {5.0f, 4.9f, 1.0f, 0.5f, 0.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  p.top_p = 1.0f;
  p.min_p = 0;
  Sampler s(p);
  for (int i = 0; i < 200; ++i) CHECK(s.Sample(logits) <= 1);
  p.top_k = 0;
  p.min_p = 0.5f;  // keeps tokens with p >= 0.5 * p_max: only 0 and 1
  Sampler m(p);
  for (int i = 0; i < 200; ++i) CHECK(m.Sample(logits) <= 1);
  p.min_p = 0;
  p.top_p = 0.4f;  // the most likely token alone covers 0.4
  Sampler t(p);
  for (int i = 0; i < 200; ++i) CHECK(t.Sample(logits) == 0);
}

TEST_CASE("temperature sampling follows the softmax distribution", "[sampler]") {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0;
  Sampler s(p);
  std::map<int, int> n;
  const int N = 20000;
  for (int i = 0; i < N; ++i) n[s.Sample(logits)]++;
  CHECK(n[0] / double(N) == Approx(0.5).margin(0.02));
  CHECK(n[1] / double(N) == Approx(0.3).margin(0.02));
  CHECK(n[2] / double(N) == Approx(0.2).margin(0.02));
}

TEST_CASE("repetition, frequency and presence penalties", "[sampler]") {
  std::vector<float> logits = {3.0f, 2.9f, -1.0f};
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = 1.5f;  // 3.0 / 1.5 = 2.0 < 2.9
  Sampler s(p);
  s.Accept(0);
  CHECK(s.Sample(logits) == 1);
  SamplingParams f;
  f.temperature = 0;
  f.frequency_penalty = 0.08f;  // seen twice: 3.0 - 2 * 0.08 = 2.84 < 2.9
  Sampler fs(f);
  fs.Accept(0);
  CHECK(fs.Sample(logits) == 0);  // seen once: 2.92 still wins
  fs.Accept(0);
  CHECK(fs.Sample(logits) == 1);
  SamplingParams pr;
  pr.temperature = 0;
  pr.presence_penalty = 0.2f;  // once, however often: 2.8 < 2.9
  Sampler ps(pr);
  ps.Accept(0);
  CHECK(ps.Sample(logits) == 1);
}

TEST_CASE("logprobs are a normalised log-softmax", "[sampler]") {
  std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  auto top = Sampler::TopLogprobs(logits, 2);
  REQUIRE(top.size() == 2);
  CHECK(top[0].token == 2);
  double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(top[0].logprob == Approx(3.0 - std::log(z)).epsilon(1e-5));
  CHECK(Sampler::Logprob(logits, 0) == Approx(1.0 - std::log(z)).epsilon(1e-5));
}

TEST_CASE("parameter validation names the bad parameter", "[sampler]") {
  SamplingParams p;
  p.top_p = 0;
  CHECK(p.Validate().message().find("top_p") != std::string::npos);
  p = SamplingParams();
  p.temperature = -1;
  CHECK(p.Validate().message().find("temperature") != std::string::npos);
  CHECK(SamplingParams().Validate().ok());
}

TEST_CASE("stop strings are found across pieces and never leak", "[generate]") {
  StopStringMatcher m({"</end>", "STOP"});
  std::string out;
  out += m.Push("hello </");
  CHECK(out == "hello ");  // "</" might start "</end>"
  out += m.Push("en");
  out += m.Push("d> more");
  CHECK(m.stopped());
  CHECK(out == "hello ");
  StopStringMatcher n({"STOP"});
  std::string o2 = n.Push("ST");
  o2 += n.Push("ART");
  CHECK(!n.stopped());
  CHECK(o2 + n.Flush() == "START");
}

}  // namespace lms
