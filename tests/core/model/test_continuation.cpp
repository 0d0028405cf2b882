// Forced choice between continuations, against the double-precision reference forward: each
// option's log-probability equals the sum of the reference log-softmax over its tokens.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include "core/backend/backend.h"
#include "core/model/continuation.h"
#include "core/model/model.h"
#include "tests/core/model/tiny_model.h"
#include "tests/test_support.h"

namespace lms {
namespace {

double ReferenceLogProb(const gguf::GgufFile& file, const test::TinySpec& spec, const std::vector<int32_t>& prompt,
                        const std::vector<int32_t>& option) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), option.begin(), option.end());
  const auto logits = test::ReferenceLogits(file, spec, all);
  double lp = 0;
  for (size_t i = 0; i < option.size(); ++i) {
    const auto& row = logits[prompt.size() - 1 + i];
    double mx = row[0];
    for (double v : row) mx = std::max(mx, v);
    double sum = 0;
    for (double v : row) sum += std::exp(v - mx);
    lp += row[static_cast<size_t>(option[i])] - mx - std::log(sum);
  }
  return lp;
}

}  // namespace

TEST_CASE("continuation log-probabilities match the reference forward and leave the prompt", "[model][choice]") {
  test::TinySpec spec;
  spec.n_vocab = 96;
  const auto bytes = test::MakeTinyModel(spec);
  const std::string path = test::TempDir() + "/choice.gguf";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  auto file = gguf::GgufFile::FromBytes(bytes);
  REQUIRE(file.ok());
  auto backend = MakeCpuBackend({1});
  auto model = Model::Load(path, *backend);
  REQUIRE(model.ok());
  SessionOptions so;
  so.n_ctx = 64;
  so.kv_type = TensorType::kF32;  // the reference keeps keys and values in double precision
  auto session = Session::Create(**model, *backend, so);
  REQUIRE(session.ok());

  const std::vector<int32_t> prompt = {5, 17, 40, 3, 88, 12};
  const std::vector<std::vector<int32_t>> options = {{7}, {8, 60}, {60, 8, 7}, {}};
  auto lps = ContinuationLogProbs(**session, prompt, options);
  REQUIRE(lps.ok());
  REQUIRE(lps->size() == options.size());
  for (size_t i = 0; i < options.size(); ++i) {
    CAPTURE(i);
    CHECK((*lps)[i] == Approx(ReferenceLogProb(**file, spec, prompt, options[i])).epsilon(2e-5).margin(1e-4));  // log-probs near -100: relative
  }
  CHECK((*lps)[3] == 0.0);
  CHECK((*session)->n_past() == static_cast<int32_t>(prompt.size()));

  // All single tokens: the probabilities sum to one.
  std::vector<std::vector<int32_t>> every;
  for (int32_t t = 0; t < spec.n_vocab; ++t) every.push_back({t});
  auto all = ContinuationLogProbs(**session, prompt, every);
  REQUIRE(all.ok());
  double total = 0;
  for (double lp : *all) total += std::exp(lp);
  CHECK(total == Approx(1.0).margin(1e-9));
  CHECK((*all)[7] == Approx((*lps)[0]).margin(1e-12));  // a second call starts again from the prompt

  CHECK(!ContinuationLogProbs(**session, prompt, {{spec.n_vocab}}).ok());
}

}  // namespace lms
