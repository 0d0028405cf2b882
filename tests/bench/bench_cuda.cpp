// Decode and prefill speed of the CUDA backend against the memory-bandwidth roofline.
//   bench_cuda [--device N] [--reps R] [--steps S] [--models a,b,...] [--graphs] [--tiled-prefill]
//              [--prefill-only] [--op-times] [--greedy] [--pdl]
// Models: smollm2-q4_1, smollm2-q8_0 (from the model cache; $LMS_SMOLLM2_Q4_1 / $LMS_SMOLLM2_Q8_0
// override; where absent, random weights in SmolLM2-135M's shapes), llama1b-bf16, llama1b-q8_0 (a Llama-shaped model of 1.0 B parameters with random
// weights written by our GGUF writer: d 2048, 16 layers, 32/8 heads, ff 8192, vocab 32000).
// For each model: prefill tokens/s of one 512-token prompt, and decode tokens/s at batch 1, 16
// and 64 (each sequence 128 tokens into its context), each the median of R runs. The roofline is
// bytes read per decode step (all weights once, plus every sequence's K/V) divided by the
// device's bandwidth, measured here with a device-to-device copy (the peak from the memory
// clock and bus width is printed beside it). --graphs replays decode steps as CUDA graphs;
// --tiled-prefill runs prompts through the tiled tensor-core attention; --prefill-only skips decode;
// --op-times prints GPU time per op (LMS_CUDA_OP_TIMES) for the prefill and for decode at batch 1
// (without --graphs: steps recorded for graphs are not timed); --greedy ends each decode step with
// the greedy choice on the device (LlamaForward::ForwardGreedy: token ids, not logits, to the host);
// --pdl launches the decode-step kernels as programmatic dependent launches (LMS_CUDA_PDL; sm_90).
// Prints a table and one JSON line per figure.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/kv/kv_cache.h"
#include "core/model/llama_forward.h"
#include "core/model/model.h"
#include "gpu/cuda_backend.h"
#include "gpu/ops/ops.h"
#include "tests/core/model/tiny_model.h"

using namespace lms;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kPrompt = 512, kContext = 128;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device copy bandwidth (read + write bytes per second), median of 5.
double MeasureBandwidth(int device) {
  cudaSetDevice(device);
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> bw;
  for (int i = 0; i < 6; ++i) {
    cudaEventRecord(e0);
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i > 0) bw.push_back(2.0 * bytes / (ms * 1e-3));
  }
  cudaFree(a);
  cudaFree(b);
  return Median(bw);
}

std::string Home() { return std::getenv("HOME") ? std::getenv("HOME") : "."; }

// A random model written by our GGUF writer (its speed is that of any model of its shapes).
// The weights are the same every time (a fixed seed), so a file an earlier run wrote is used
// again: a 1B model takes a while to make, and the GPU runs call bench_cuda several times. It is
// written under another name and renamed, so a run killed while writing leaves nothing behind.
std::string WriteRandomModel(const std::string& name, const test::TinySpec& s) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/bench-cuda-" + name + ".gguf";
  if (std::ifstream(path).good()) {
    std::fprintf(stderr, "%s: random weights written by an earlier run\n", path.c_str());
    return path;
  }
  std::fprintf(stderr, "writing %s (random weights) ...\n", path.c_str());
  const auto bytes = test::MakeTinyModel(s);
  const std::string part = path + ".part";
  {
    std::ofstream out(part, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
      std::fprintf(stderr, "could not write %s\n", part.c_str());
      return "";
    }
  }
  if (std::rename(part.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "could not rename %s to %s\n", part.c_str(), path.c_str());
    return "";
  }
  return path;
}

// The model file for a name: a cached SmolLM2 (else a random model of SmolLM2's shapes) or a
// freshly written random 1B model.
std::string ModelPath(const std::string& name) {
  auto env = [](const char* k) { return std::getenv(k) ? std::string(std::getenv(k)) : std::string(); };
  test::TinySpec s;
  s.tied = true;
  if (name == "smollm2-q4_1" || name == "smollm2-q8_0") {
    const bool q4 = name == "smollm2-q4_1";
    std::string path = env(q4 ? "LMS_SMOLLM2_Q4_1" : "LMS_SMOLLM2_Q8_0");
    if (path.empty()) {
      path = Home() + (q4 ? "/.cache/lmstation/models/SmolLM2-135M-Instruct.Q4_1.gguf"
                          : "/.cache/lmstation/bench/SmolLM2-135M-Instruct.Q8_0.gguf");
    }
    if (std::ifstream(path).good()) return path;
    std::printf("%-14s %s not found: random weights in SmolLM2-135M's shapes instead\n", name.c_str(), path.c_str());
    s.n_layers = 30;
    s.d_model = 576;
    s.n_heads = 9;
    s.n_kv_heads = 3;
    s.d_ff = 1536;
    s.n_vocab = 49152;
    s.rope_theta = 100000.0f;
    s.matrix_type = q4 ? TensorType::kQ4_1 : TensorType::kQ8_0;
    return WriteRandomModel(name, s);
  }
  s.n_layers = 16;
  s.d_model = 2048;
  s.n_heads = 32;
  s.n_kv_heads = 8;
  s.d_ff = 8192;
  s.n_vocab = 32000;
  s.rope_theta = 500000.0f;
  if (name == "llama1b-bf16") {
    s.matrix_type = TensorType::kBF16;
  } else if (name == "llama1b-q8_0") {
    s.matrix_type = TensorType::kQ8_0;
  } else {
    return "";
  }
  return WriteRandomModel(name, s);
}

// Bytes of every matrix the forward reads once per step (the embedding table only when it is
// also the output head, which reads all of it).
double WeightBytes(const ModelConfig& c, const ModelWeights& w) {
  auto bytes = [](const TensorView& t) { return t.data ? static_cast<double>(t.row_stride) * t.rows : 0.0; };
  double total = bytes(w.output) + bytes(w.output_norm);
  for (const auto& L : w.layers) {
    for (const TensorView* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down, &L.attn_norm, &L.ffn_norm}) {
      total += bytes(*t);
    }
  }
  (void)c;
  return total;
}

struct Bench {
  const Model& model;
  Backend& backend;
  int reps, steps;
};

// Seconds that run() takes; exits on its error.
template <class F>
double Timed(F run) {
  const auto t0 = Clock::now();
  const Status s = run();
  if (!s.ok()) {
    std::fprintf(stderr, "forward failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Runs one forward, returning seconds (Forward ends by copying logits to the host: synchronous).
double TimedForward(LlamaForward& f, const BatchLayout& b, KvCache& kv, std::vector<float>& logits) {
  return Timed([&] { return f.Forward(b, kv, logits.data()); });
}

struct Flags {
  bool graphs = false, tiled_prefill = false, prefill_only = false, op_times = false, greedy = false, pdl = false;
};

// A decode step: logits to the host, or with --greedy only the chosen ids.
double TimedStep(LlamaForward& f, const BatchLayout& b, KvCache& kv, std::vector<float>& logits,
                 std::vector<int32_t>& ids, const Flags& flags) {
  if (!flags.greedy) return TimedForward(f, b, kv, logits);
  return Timed([&] { return f.ForwardGreedy(b, kv, ids.data()); });
}

// Prints the backend's GPU time per op since the last call (with --op-times), then starts again.
void PrintOpTimes(Backend& backend, const Flags& flags, const std::string& what) {
  if (!flags.op_times) return;
  auto totals = gpu::CudaOpTimes(backend, true);
  if (!totals.ok()) {
    std::printf("op times: %s\n", totals.status().ToString().c_str());
    return;
  }
  if (!what.empty()) std::printf("  GPU time per op, %s:\n%s", what.c_str(), gpu::OpTimesTable(*totals).c_str());
}

int Run(const std::string& name, int device, int reps, int steps, double bandwidth, const Flags& flags) {
  const bool graphs = flags.graphs;
  const std::string path = ModelPath(name);
  if (path.empty()) {
    std::fprintf(stderr, "no model file for %s\n", name.c_str());
    return 1;
  }
  gpu::CudaGraphStats graph_stats;
  gpu::CudaBackendOptions bo;
  bo.graphs = graphs;
  bo.graph_stats = &graph_stats;
  bo.tiled_prefill = flags.tiled_prefill;
  bo.dependent_launches = flags.pdl;
  auto backend = gpu::MakeCudaBackend(device, bo);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  auto model = Model::Load(path, **backend);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const ModelConfig& c = (*model)->config();
  const int max_batch = 64;
  KvCacheOptions ko;
  ko.block_size = 16;
  ko.n_blocks = max_batch * ((kContext + steps + 16) / 16 + 1) + kPrompt / 16 + 1;
  auto kv = KvCache::Create(**backend, c, ko);
  auto fw = LlamaForward::Create(c, (*model)->weights(), **backend, kPrompt);
  if (!kv.ok() || !fw.ok()) {
    std::fprintf(stderr, "setup failed\n");
    return 1;
  }
  std::vector<float> logits(static_cast<size_t>(max_batch) * c.n_vocab);
  std::vector<int32_t> ids(max_batch);
  const double wbytes = WeightBytes(c, (*model)->weights());
  const double kv_row_bytes = 2.0 * c.n_layers * c.n_kv_heads * c.head_dim * 2;  // K and V, f16, per position
  auto tok = [&](int i) { return static_cast<int32_t>((i * 7919 + 11) % c.n_vocab); };

  // Prefill: one sequence of kPrompt tokens, logits of the last.
  {
    KvSequence seq;
    if (!kv->Reserve(seq, kPrompt).ok()) return 1;
    BatchLayout b;
    b.block_tables = {seq.blocks};
    for (int i = 0; i < kPrompt; ++i) {
      b.tokens.push_back(tok(i));
      b.positions.push_back(i);
      b.seq_of_token.push_back(0);
      b.slots.push_back(kv->Slot(seq, i));
    }
    b.logit_rows = {kPrompt - 1};
    TimedForward(**fw, b, *kv, logits);  // warm-up (cuBLAS plans, scratch growth)
    PrintOpTimes(**backend, flags, "");  // forget the warm-up's
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) t.push_back(TimedForward(**fw, b, *kv, logits));
    PrintOpTimes(**backend, flags, name + " prefill of " + std::to_string(kPrompt) + " tokens, " + std::to_string(reps) + " runs");
    const double tps = kPrompt / Median(t);
    const char* attention = flags.tiled_prefill ? "tiled" : "paged";
    std::printf("%-14s prefill %4d tokens  %10.1f tok/s  (%s attention)\n", name.c_str(), kPrompt, tps, attention);
    std::printf("{\"model\":\"%s\",\"test\":\"prefill\",\"tokens\":%d,\"attention\":\"%s\",\"tokens_per_s\":%.2f}\n",
                name.c_str(), kPrompt, attention, tps);
    kv->Release(seq);
  }
  if (flags.prefill_only) return 0;
  // Decode at several batch sizes.
  for (int B : {1, 16, 64}) {
    std::vector<KvSequence> seqs(B);
    for (int s = 0; s < B; ++s) {
      if (!kv->Reserve(seqs[s], kContext + steps + 1).ok()) return 1;
    }
    // Fill each sequence's first kContext positions (chunks of up to kPrompt tokens).
    for (int s0 = 0; s0 < B;) {
      BatchLayout b;
      int s = s0;
      for (; s < B && (s - s0 + 1) * kContext <= kPrompt; ++s) {
        b.block_tables.push_back(seqs[s].blocks);
        for (int i = 0; i < kContext; ++i) {
          b.tokens.push_back(tok(i + s));
          b.positions.push_back(i);
          b.seq_of_token.push_back(s - s0);
          b.slots.push_back(kv->Slot(seqs[s], i));
        }
      }
      b.logit_rows = {0};
      TimedForward(**fw, b, *kv, logits);
      s0 = s;
    }
    auto step_batch = [&](int step) {
      BatchLayout b;
      for (int s = 0; s < B; ++s) {
        b.block_tables.push_back(seqs[s].blocks);
        b.tokens.push_back(tok(step + s));
        b.positions.push_back(kContext + step);
        b.seq_of_token.push_back(s);
        b.slots.push_back(kv->Slot(seqs[s], kContext + step));
        b.logit_rows.push_back(s);
      }
      return b;
    };
    std::vector<double> per_rep;
    const gpu::CudaGraphStats before = graph_stats;
    PrintOpTimes(**backend, flags, "");
    for (int r = 0; r < reps; ++r) {
      double total = 0;
      for (int step = 0; step < steps; ++step) total += TimedStep(**fw, step_batch(step), *kv, logits, ids, flags);
      per_rep.push_back(total / steps);
    }
    if (B == 1) PrintOpTimes(**backend, flags, name + " decode at batch 1, " + std::to_string(reps * steps) + " steps");
    const double step_s = Median(per_rep);
    const double tps = B / step_s;
    const double bytes = wbytes + B * (kContext + steps / 2.0) * kv_row_bytes;
    const double roof = bandwidth > 0 ? B / (bytes / bandwidth) : 0;
    const bool pdl = gpu::DependentLaunches();  // asked for and supported by the card
    std::printf("%-14s decode batch %2d%s%s%s  %10.1f tok/s  roofline %10.1f tok/s  (%5.1f%%; %.1f MB/step)\n",
                name.c_str(), B, graphs ? " (graphs)" : "", flags.greedy ? " (greedy on device)" : "",
                pdl ? " (dependent launches)" : "", tps, roof, roof > 0 ? 100.0 * tps / roof : 0.0, bytes / 1e6);
    std::printf("{\"model\":\"%s\",\"test\":\"decode\",\"batch\":%d,\"graphs\":%s,\"greedy_on_device\":%s,"
                "\"dependent_launches\":%s,\"tokens_per_s\":%.2f,\"roofline_tokens_per_s\":%.2f,"
                "\"fraction_of_roofline\":%.4f,\"bytes_per_step\":%.0f}\n",
                name.c_str(), B, graphs ? "true" : "false", flags.greedy ? "true" : "false", pdl ? "true" : "false",
                tps, roof, roof > 0 ? tps / roof : 0.0, bytes);
    if (graphs) {
      std::printf("%-14s   graphs: %lld steps captured, %lld replayed, %lld run directly\n", name.c_str(),
                  static_cast<long long>(graph_stats.captures - before.captures),
                  static_cast<long long>(graph_stats.replays - before.replays),
                  static_cast<long long>(graph_stats.direct - before.direct));
    }
    for (auto& s : seqs) kv->Release(s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int device = 0, reps = 5, steps = 32;
  Flags flags;
  std::string models = "smollm2-q4_1,smollm2-q8_0,llama1b-bf16,llama1b-q8_0";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") device = std::atoi(next().c_str());
    else if (a == "--reps") reps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--steps") steps = std::max(1, std::atoi(next().c_str()));
    else if (a == "--models") models = next();
    else if (a == "--graphs") flags.graphs = true;
    else if (a == "--tiled-prefill") flags.tiled_prefill = true;
    else if (a == "--prefill-only") flags.prefill_only = true;
    else if (a == "--op-times") flags.op_times = true;
    else if (a == "--greedy") flags.greedy = true;
    else if (a == "--pdl") flags.pdl = true;
    else {
      std::fprintf(stderr, "usage: bench_cuda [--device N] [--reps R] [--steps S] [--models a,b,...] [--graphs] "
                           "[--tiled-prefill] [--prefill-only] [--op-times] [--greedy] [--pdl]\n");
      return 2;
    }
  }
  if (flags.op_times) setenv("LMS_CUDA_OP_TIMES", "1", 1);  // read when the backend is made
  const auto devices = gpu::ListCudaDevices();
  if (device < 0 || device >= static_cast<int>(devices.size())) {
    std::printf("bench_cuda: no CUDA device %d; nothing measured\n", device);
    return 1;
  }
  const auto& d = devices[device];
  const double bw = MeasureBandwidth(device), peak = gpu::PeakMemoryBandwidth(device);
  std::printf("device %d: %s, %.1f GiB, sm_%d%d; copy bandwidth %.0f GB/s (peak from clocks %.0f GB/s)\n", device,
              d.name.c_str(), d.memory_bytes / 1073741824.0, d.cc_major, d.cc_minor, bw / 1e9, peak / 1e9);
  std::printf("{\"device\":\"%s\",\"copy_bandwidth_gbs\":%.1f,\"peak_bandwidth_gbs\":%.1f}\n", d.name.c_str(), bw / 1e9,
              peak / 1e9);
  int rc = 0;
  size_t start = 0;
  while (start <= models.size()) {
    const size_t comma = models.find(',', start);
    const std::string name = models.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!name.empty()) rc |= Run(name, device, reps, steps, bw, flags);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return rc;
}
