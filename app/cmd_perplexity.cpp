// lmstation perplexity MODEL FILE — perplexity over a text, chunked like llama.cpp's tool:
// the text is cut into chunks of --ctx tokens and only the second half of each chunk is scored,
// so every scored token sees at least ctx/2 tokens of context.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "app/commands.h"
#include "app/generation_options.h"
#include "core/model/session.h"

namespace lms::app {

CommandFn AddPerplexityCommand(CLI::App& cli) {
  struct Opts {
    std::string model, file;
    bool json = false;
    int max_chunks = 0;
    GenerationOptions gen;
  };
  auto o = std::make_shared<Opts>();
  o->gen.ctx = 512;
  auto* sub = cli.add_subcommand("perplexity", "Measure perplexity on a text file");
  sub->add_option("model", o->model, "GGUF file or known model name")->required();
  sub->add_option("file", o->file, "UTF-8 text file")->required()->check(CLI::ExistingFile);
  sub->add_option("--chunks", o->max_chunks, "Score at most this many chunks (0: all)");
  sub->add_flag("--json", o->json, "Print one JSON object");
  o->gen.AddRuntimeFlags(sub);
  return [o]() {
    std::ifstream in(o->file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto lm = LoadModel(o->model, o->gen.threads, o->gen.device);
    if (!lm.ok()) return Fail(lm.status());
    const Model& model = *lm->model;
    const Tokenizer& tok = model.tokenizer();
    const std::vector<int32_t> tokens = tok.Encode(ss.str(), /*add_special=*/true, /*parse_special=*/false);
    const int n_ctx = o->gen.ctx;
    if (n_ctx < 8) return Fail(Status::InvalidArgument("--ctx must be at least 8"));
    int n_chunks = static_cast<int>(tokens.size() / n_ctx);
    if (o->max_chunks > 0) n_chunks = std::min(n_chunks, o->max_chunks);
    if (n_chunks == 0) {
      return Fail(Status::InvalidArgument(fmt::format("{} has {} tokens; at least --ctx {} are needed",
                                                      o->file, tokens.size(), n_ctx)));
    }
    SessionOptions so = o->gen.session();
    so.n_batch = std::min(o->gen.batch, n_ctx);
    auto session = Session::Create(model, *lm->backend, so);
    if (!session.ok()) return Fail(session.status());
    // The model's add-BOS setting decides whether each chunk starts with BOS, as in llama.cpp.
    const std::vector<int32_t> probe = tok.Encode("a", true, false);
    const bool add_bos = tok.bos_id() >= 0 && !probe.empty() && probe[0] == tok.bos_id();
    const int32_t n_vocab = model.config().n_vocab;
    const int first = n_ctx / 2;
    double nll = 0;
    int64_t count = 0;
    std::vector<float> logits;
    auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < n_chunks; ++c) {
      std::vector<int32_t> chunk(tokens.begin() + int64_t{c} * n_ctx, tokens.begin() + int64_t{c + 1} * n_ctx);
      if (add_bos) chunk[0] = tok.bos_id();
      logits.clear();
      (*session)->Rewind(0);
      if (Status s = (*session)->Feed(chunk, &logits); !s.ok()) return Fail(s);
      for (int j = first; j < n_ctx - 1; ++j) {
        const float* row = logits.data() + static_cast<size_t>(j) * n_vocab;
        float mx = row[0];
        for (int32_t v = 1; v < n_vocab; ++v) mx = std::max(mx, row[v]);
        double sum = 0;
        for (int32_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
        const int32_t target = tokens[int64_t{c} * n_ctx + j + 1];
        nll += -(row[target] - mx - std::log(sum));
        ++count;
      }
      if (!o->json) {
        std::fprintf(stderr, "[%d/%d] ppl so far %.4f\n", c + 1, n_chunks, std::exp(nll / count));
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ppl = std::exp(nll / count);
    if (o->json) {
      nlohmann::json j = {{"ppl", ppl}, {"nll", nll / count}, {"chunks", n_chunks}, {"ctx", n_ctx},
                          {"scored_tokens", count}, {"text_tokens", tokens.size()}, {"seconds", secs}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("perplexity %.4f over %lld scored tokens (%d chunks of %d) in %.1f s\n", ppl,
                  static_cast<long long>(count), n_chunks, n_ctx, secs);
    }
    return 0;
  };
}

}  // namespace lms::app
