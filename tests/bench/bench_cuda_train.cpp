// Training speed of the CUDA engine: tokens/s and model FLOPs utilisation (MFU) of one stage,
// and the measured pipeline bubble of GPipe and 1F1B with 2 and 4 stages sharing the GPU.
//   bench_cuda_train [--device N] [--layers 12] [--d-model 768] [--heads 12] [--kv-heads 12]
//                    [--d-ff 2048] [--vocab 50304] [--seq 1024] [--batch 8] [--microbatches 1]
//                    [--warmup 3] [--steps 10] [--precision bf16,bf16-materialized[,f32]] [--peak-tflops X]
//                    [--pipeline 2,4] [--pipe-microbatches 8] [--pipe-steps 5] [--op-times]
// The default model is Llama-shaped at GPT-2 124M's size (12 layers, d 768, 12 heads, SwiGLU
// d_ff 2048, vocab 50304, tied head), sequences of 1024 tokens, 8 a step.
// MFU = flops_per_token · tokens / step time / peak, with the PaLM count
//   flops_per_token = 6·N + 12·L·d·T
// (N: every weight of a matrix product, the tied embedding once as the head; the attention term
// counts the full T×T). Peak: --peak-tflops, else the card's dense BF16 figure (H100/H200 SXM
// 989, PCIe 756, A100 312). Each step is ZeroGrads + ForwardBackward + OptimizerStep, timed on
// the host (the engine synchronises at the end of each); the median over --steps after --warmup.
// bf16 runs flash attention; bf16-materialized the T×T attention with the same products.
// --op-times adds a table of GPU time per op (LMS_CUDA_OP_TIMES=1) for the single-stage runs.
// Prints a table and a final `RESULT {json}` line.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/train/train_engine.h"
#include "gpu/train/cuda_train_engine.h"

using namespace lms;
using Clock = std::chrono::steady_clock;

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) if (!x.empty()) out.push_back(x);
  return out;
}

double PeakTflops(const std::string& name) {
  const bool pcie = name.find("PCIe") != std::string::npos;
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return pcie ? 756 : 989;
  if (name.find("A100") != std::string::npos) return 312;
  return 0;
}

struct Opts {
  int device = 0;
  train::ModelShape shape;
  int batch = 8, microbatches = 1, warmup = 3, steps = 10, pipe_m = 8, pipe_steps = 5;
  bool op_times = false;  // GPU time per op of the single-stage runs (LMS_CUDA_OP_TIMES)
  std::vector<std::string> precisions{"bf16", "bf16-materialized"};
  std::vector<int> pipeline{2, 4};
  double peak = 0;
};

struct Run {
  double step_s = 0, bubble = 0, loss_first = 0, loss_last = 0;
  std::vector<double> steps_ms, bubbles;
  int64_t act_bytes = 0;
};

Result<Run> Measure(const Opts& o, const std::string& precision, int stages, train::ScheduleKind kind, int M, int warmup,
                    int steps) {
  train::TrainEngineSpec sp;
  sp.shape = o.shape;
  sp.optim.lr = 3e-4f;
  sp.optim.warmup_steps = 0;
  sp.optim.total_steps = 1000;
  sp.pipeline.schedule = kind;
  sp.pipeline.boundaries = train::EqualSplit(o.shape.n_layers, stages);
  sp.pipeline.microbatches = M;
  sp.pipeline.micro_batch_size = o.batch / M;
  sp.device = "cuda:" + std::to_string(o.device);
  // "bf16-materialized": bf16 products with the T×T attention instead of flash attention.
  const std::string suffix = "-materialized";
  const bool materialized = precision.size() > suffix.size() && precision.ends_with(suffix);
  sp.precision = materialized ? precision.substr(0, precision.size() - suffix.size()) : precision;
  if (materialized) setenv("LMS_CUDA_ATTENTION", "materialized", 1);
  const train::ParamLayout layout = train::ParamLayout::For(o.shape);
  auto created = gpu::train::CreateCudaTrainEngine(sp, layout);
  if (materialized) unsetenv("LMS_CUDA_ATTENTION");
  LMS_RETURN_IF_ERROR(created.status());
  auto e = std::move(created).value();
  std::printf("  engine: %s\n", e->Describe().c_str());
  std::vector<float> params;
  train::InitParams(o.shape, layout, 1, params);
  LMS_RETURN_IF_ERROR(e->SetState(params, nullptr, nullptr));
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int32_t> tok(0, o.shape.n_vocab - 1);
  const int64_t n = int64_t{o.batch} * o.shape.seq_len;
  std::vector<int32_t> in(static_cast<size_t>(n)), tg(static_cast<size_t>(n));
  Run r;
  r.act_bytes = e->activation_bytes();
  for (int s = 0; s < warmup + steps; ++s) {
    for (auto& t : in) t = tok(rng);
    for (auto& t : tg) t = tok(rng);
    const auto t0 = Clock::now();
    LMS_RETURN_IF_ERROR(e->ZeroGrads());
    LMS_ASSIGN_OR_RETURN(train::StepReport rep, e->ForwardBackward(in.data(), tg.data(), 1.0f / static_cast<float>(n)));
    LMS_ASSIGN_OR_RETURN(double norm, e->OptimizerStep(s));
    (void)norm;
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    const double loss = rep.loss_sum / static_cast<double>(rep.tokens);
    if (s == 0) r.loss_first = loss;
    r.loss_last = loss;
    if (s + 1 == warmup) e->ResetOpTimes();  // count the timed steps only
    if (s >= warmup) {
      r.steps_ms.push_back(sec * 1e3);
      r.bubbles.push_back(rep.Bubble());
    }
  }
  r.step_s = Median(r.steps_ms) / 1e3;
  r.bubble = Median(r.bubbles);
  if (o.op_times && stages == 1) {
    LMS_ASSIGN_OR_RETURN(auto totals, e->OpTimeTotals());
    std::printf("  GPU time per op over %d steps (events around each op; the step itself is timed without them "
                "only when --op-times is off):\n%s",
                steps, gpu::OpTimesTable(totals).c_str());
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  o.shape.n_layers = 12;
  o.shape.d_model = 768;
  o.shape.n_heads = 12;
  o.shape.n_kv_heads = 12;
  o.shape.d_ff = 2048;
  o.shape.n_vocab = 50304;
  o.shape.seq_len = 1024;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") o.device = std::stoi(next());
    else if (a == "--layers") o.shape.n_layers = std::stoi(next());
    else if (a == "--d-model") o.shape.d_model = std::stoi(next());
    else if (a == "--heads") o.shape.n_heads = std::stoi(next());
    else if (a == "--kv-heads") o.shape.n_kv_heads = std::stoi(next());
    else if (a == "--d-ff") o.shape.d_ff = std::stoi(next());
    else if (a == "--vocab") o.shape.n_vocab = std::stoi(next());
    else if (a == "--seq") o.shape.seq_len = std::stoi(next());
    else if (a == "--batch") o.batch = std::stoi(next());
    else if (a == "--microbatches") o.microbatches = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--steps") o.steps = std::stoi(next());
    else if (a == "--precision") o.precisions = Split(next());
    else if (a == "--peak-tflops") o.peak = std::stod(next());
    else if (a == "--pipeline") {
      o.pipeline.clear();
      for (const auto& s : Split(next())) o.pipeline.push_back(std::stoi(s));
    } else if (a == "--pipe-microbatches") o.pipe_m = std::stoi(next());
    else if (a == "--pipe-steps") o.pipe_steps = std::stoi(next());
    else if (a == "--op-times") o.op_times = true;
    else {
      std::fprintf(stderr, "unknown option %s (see the header of bench_cuda_train.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (o.op_times) setenv("LMS_CUDA_OP_TIMES", "1", 1);  // read when each engine's kernels are made
  if (Status s = o.shape.Validate(); !s.ok() || o.batch % o.microbatches != 0 || o.batch % o.pipe_m != 0) {
    std::fprintf(stderr, "bad shape: %s\n", s.ok() ? "batch must be a multiple of the micro-batches" : s.message().c_str());
    return 2;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, o.device) != cudaSuccess) {
    std::fprintf(stderr, "no CUDA device %d\n", o.device);
    return 2;
  }
  const double peak = o.peak > 0 ? o.peak : PeakTflops(prop.name);
  const train::ParamLayout layout = train::ParamLayout::For(o.shape);
  int64_t N = 0;  // weights of matrix products (the tied embedding once, as the head)
  for (const auto* t : layout.All())
    if (t->matrix) N += t->size();
  const double L = o.shape.n_layers, d = o.shape.d_model, T = o.shape.seq_len;
  const double flops_per_token = 6.0 * static_cast<double>(N) + 12.0 * L * d * T;
  const int64_t tokens = int64_t{o.batch} * o.shape.seq_len;
  std::printf("device %d: %s; model %s, %lld matrix weights; %d × %d tokens a step; %.0f GFLOP a token; peak %.0f TFLOP/s\n",
              o.device, prop.name, o.shape.Summary().c_str(), static_cast<long long>(N), o.batch, o.shape.seq_len,
              flops_per_token / 1e9, peak);
  nlohmann::json out = {{"device", prop.name}, {"layers", o.shape.n_layers}, {"d_model", o.shape.d_model},
                        {"heads", o.shape.n_heads}, {"kv_heads", o.shape.n_kv_heads}, {"d_ff", o.shape.d_ff},
                        {"vocab", o.shape.n_vocab}, {"seq", o.shape.seq_len}, {"batch", o.batch}, {"params", N},
                        {"flops_per_token", flops_per_token}, {"peak_tflops", peak}};
  int rc = 0;
  for (const auto& prec : o.precisions) {
    auto r = Measure(o, prec, 1, train::ScheduleKind::k1F1B, o.microbatches, o.warmup, o.steps);
    if (!r.ok()) {
      std::printf("%s: failed: %s\n", prec.c_str(), r.status().message().c_str());
      rc = 1;
      continue;
    }
    const double tps = static_cast<double>(tokens) / r->step_s;
    const double mfu = peak > 0 ? flops_per_token * tps / (peak * 1e12) : 0.0;
    std::printf("%-5s 1 stage, %d micro-batch(es): step %.1f ms (median of %d), %.0f tokens/s, MFU %.1f%%, "
                "activations %.2f GB, loss %.3f → %.3f\n",
                prec.c_str(), o.microbatches, r->step_s * 1e3, o.steps, tps, mfu * 100, r->act_bytes / 1e9,
                r->loss_first, r->loss_last);
    out["single"][prec] = {{"step_ms_median", r->step_s * 1e3}, {"step_ms_all", r->steps_ms}, {"tokens_per_s", tps},
                           {"mfu", mfu}, {"activation_gb", r->act_bytes / 1e9}, {"loss_first", r->loss_first},
                           {"loss_last", r->loss_last}};
  }
  // The bubble of pipelines sharing this GPU (stages on their own streams, run concurrently).
  for (int S : o.pipeline) {
    if (S > o.shape.n_layers) continue;
    for (auto kind : {train::ScheduleKind::kGPipe, train::ScheduleKind::k1F1B}) {
      auto r = Measure(o, o.precisions.front(), S, kind, o.pipe_m, 1, o.pipe_steps);
      const std::string key = std::string(train::ScheduleName(kind)) + "_s" + std::to_string(S);
      if (!r.ok()) {
        std::printf("%s: failed: %s\n", key.c_str(), r.status().message().c_str());
        rc = 1;
        continue;
      }
      const double theory = train::TheoreticalBubble(S, o.pipe_m);
      std::printf("%-5s %d stages on one GPU, M=%d: bubble %.3f (theory %.3f), step %.1f ms, %.0f tokens/s\n",
                  train::ScheduleName(kind), S, o.pipe_m, r->bubble, theory, r->step_s * 1e3,
                  static_cast<double>(tokens) / r->step_s);
      out["pipeline"][key] = {{"stages", S}, {"microbatches", o.pipe_m}, {"bubble", r->bubble}, {"bubbles", r->bubbles},
                              {"bubble_theory", theory}, {"step_ms_median", r->step_s * 1e3},
                              {"tokens_per_s", static_cast<double>(tokens) / r->step_s}};
    }
  }
  std::printf("RESULT %s\n", out.dump().c_str());
  return rc;
}
