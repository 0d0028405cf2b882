// lmstation bench MODEL — prompt processing and generation speed, like llama-bench:
// pp: a fresh context reads N prompt tokens in batches; tg: N tokens generated one at a time.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "app/commands.h"
#include "app/generation_options.h"
#include "core/model/session.h"

namespace lms::app {
namespace {

struct Stats {
  double mean = 0, stddev = 0, median = 0, min = 0, max = 0;
};

Stats Summarise(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  double var = 0;
  for (double x : v) var += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0;
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  s.min = v.front();
  s.max = v.back();
  return s;
}

}  // namespace

CommandFn AddBenchCommand(CLI::App& cli) {
  struct Opts {
    std::string model, kv_type = "f16";
    int pp = 512, tg = 128, reps = 5, threads = 0, batch = 512;
    std::string device = "cpu";
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = cli.add_subcommand("bench", "Measure prompt and generation tokens/s");
  sub->add_option("model", o->model, "GGUF file or known model name")->required();
  sub->add_option("-p,--n-prompt", o->pp, "Prompt tokens (0: skip)")->capture_default_str();
  sub->add_option("-n,--n-gen", o->tg, "Generated tokens (0: skip)")->capture_default_str();
  sub->add_option("-r,--repetitions", o->reps, "Repetitions")->capture_default_str();
  sub->add_option("-t,--threads", o->threads, "Threads (default: the cores available)");
  sub->add_option("--device", o->device, kDeviceFlagHelp)->capture_default_str();
  sub->add_option("-b,--batch", o->batch, "Prompt tokens per forward pass")->capture_default_str();
  AddKvTypeFlag(sub, &o->kv_type);
  sub->add_flag("--json", o->json, "Print JSON");
  return [o]() {
    if (o->reps < 1) return Fail(Status::InvalidArgument("--repetitions must be at least 1"));
    auto lm = LoadModel(o->model, o->threads, o->device);
    if (!lm.ok()) return Fail(lm.status());
    const Model& model = *lm->model;
    SessionOptions so;
    so.n_ctx = std::max(o->pp, 0) + std::max(o->tg, 0) + 16;
    so.n_batch = std::max(1, std::min(o->batch, std::max(o->pp, 1)));
    so.kv_type = KvCacheType(o->kv_type);
    auto session = Session::Create(model, *lm->backend, so);
    if (!session.ok()) return Fail(session.status());
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> dist(0, model.config().n_vocab - 1);
    using Clock = std::chrono::steady_clock;
    nlohmann::json results = nlohmann::json::array();
    auto run_test = [&](const char* name, int n, bool prompt) -> Status {
      std::vector<double> rates;
      for (int r = -1; r < o->reps; ++r) {  // r == -1: warm-up, not counted
        (*session)->Rewind(0);
        double secs = 0;
        if (prompt) {
          std::vector<int32_t> toks(n);
          for (auto& t : toks) t = dist(rng);
          auto t0 = Clock::now();
          LMS_RETURN_IF_ERROR((*session)->Feed(toks));
          secs = std::chrono::duration<double>(Clock::now() - t0).count();
        } else {
          int32_t t = model.tokenizer().bos_id() >= 0 ? model.tokenizer().bos_id() : 0;
          auto t0 = Clock::now();
          for (int i = 0; i < n; ++i) {
            LMS_RETURN_IF_ERROR((*session)->Feed(std::span<const int32_t>(&t, 1)));
            t = dist(rng);
          }
          secs = std::chrono::duration<double>(Clock::now() - t0).count();
        }
        if (r >= 0) rates.push_back(n / secs);
      }
      Stats s = Summarise(rates);
      results.push_back({{"test", fmt::format("{}{}", name, n)}, {"tokens", n}, {"threads", lm->backend->Threads()}, {"kv_type", o->kv_type},
                         {"tokens_per_s", s.mean}, {"stddev", s.stddev}, {"median", s.median},
                         {"min", s.min}, {"max", s.max}, {"samples", rates}});
      if (!o->json) {
        std::printf("| %-40s | %8s | %7d | %6s%-5d | %10.2f ± %-7.2f |\n", model.config().name.c_str(),
                    std::string(TensorTypeName(model.weights().layers[0].wq.type)).c_str(),
                    lm->backend->Threads(), name, n, s.mean, s.stddev);
      }
      return Status::Ok();
    };
    if (!o->json) {
      std::printf("| %-40s | %8s | %7s | %-11s | %20s |\n", "model", "type", "threads", "test", "t/s");
      std::printf("|%s|%s|%s|%s|%s|\n", std::string(42, '-').c_str(), std::string(10, '-').c_str(),
                  std::string(9, '-').c_str(), std::string(13, '-').c_str(), std::string(22, '-').c_str());
    }
    if (o->pp > 0) {
      if (Status s = run_test("pp", o->pp, true); !s.ok()) return Fail(s);
    }
    if (o->tg > 0) {
      if (Status s = run_test("tg", o->tg, false); !s.ok()) return Fail(s);
    }
    if (o->json) std::printf("%s\n", nlohmann::json{{"model", model.config().name}, {"results", results}}.dump(2).c_str());
    return 0;
  };
}

}  // namespace lms::app
