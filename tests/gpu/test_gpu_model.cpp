// End to end on the GPU: greedy generation of SmolLM2 Q4_1 on the CUDA backend against the CPU
// backend (the first divergence is reported), a tiny random model's logits against the CPU's,
// and the serving engine's batch invariance on the GPU.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "core/model/generate.h"
#include "core/model/gguf.h"
#include "core/model/model.h"
#include "core/serve/engine.h"
#include "core/tensor/quant.h"
#include "gpu/cuda_backend.h"
#include "gpu/ops/ops.h"
#include "tests/core/model/tiny_model.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

std::unique_ptr<Backend> Cuda(bool graphs = false, gpu::CudaGraphStats* stats = nullptr) {
  gpu::CudaBackendOptions o;
  o.graphs = graphs;
  o.graph_stats = stats;
  auto b = gpu::MakeCudaBackend(0, o);
  REQUIRE(b.ok());
  return std::move(b).value();
}

struct Generated {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // at each generated step
};

// Greedy generation, keeping the logits of every step.
Generated GreedyGenerate(const Model& model, Backend& backend, const std::vector<int32_t>& prompt, int n) {
  SessionOptions so;
  so.n_ctx = 512;
  so.n_batch = 64;  // the prompt goes in chunks: the GEMM path and multi-token attention
  auto s = Session::Create(model, backend, so);
  REQUIRE(s.ok());
  Generated g;
  REQUIRE((*s)->Feed(prompt).ok());
  std::vector<float> row((*s)->last_logits().begin(), (*s)->last_logits().end());
  for (int i = 0; i < n; ++i) {
    int32_t best = 0;
    for (size_t v = 1; v < row.size(); ++v) {
      if (row[v] > row[best]) best = static_cast<int32_t>(v);
    }
    g.tokens.push_back(best);
    g.logits.push_back(row);
    REQUIRE((*s)->Feed(std::vector<int32_t>{best}).ok());
    row.assign((*s)->last_logits().begin(), (*s)->last_logits().end());
  }
  return g;
}

// The model's weights dequantized to F32 into a new GGUF: the CPU then multiplies them with fp32
// activations, as the CUDA mat-vec and GEMM paths do with the quantized weights.
static std::string WriteF32Copy(const std::string& path) {
  auto f = gguf::GgufFile::Open(path);
  REQUIRE(f.ok());
  gguf::GgufWriter w;
  for (const auto& kv : (*f)->metadata()) {
    if (kv.key != "general.alignment") w.SetValue(kv.key, kv.value);
  }
  for (const auto& t : (*f)->tensors()) {
    std::vector<float> v(static_cast<size_t>(t.n_elements));
    const int64_t cols = t.dims[0];
    const size_t rb = RowBytes(t.type, cols);
    for (int64_t r = 0; r < t.rows(); ++r) DequantizeRow(t.type, (*f)->TensorData(t) + r * rb, v.data() + r * cols, cols);
    REQUIRE(w.AddTensor(t.name, TensorType::kF32, t.dims, v.data(), v.size() * sizeof(float)).ok());
  }
  const std::string out = TempDir() + "/smollm2-f32.gguf";
  REQUIRE(w.WriteFile(out).ok());
  return out;
}

// Greedy generation on CUDA against two CPU runs:
//  - the same weights dequantized to F32 (fp32 activations, the GPU's arithmetic up to the order
//    of sums): every step's logits within NMSE 2e-4 and the same 64 tokens (on the host
//    emulation: the same tokens for both prompts, steps within 5.1e-5, most below 1e-5);
//  - the Q4_1 model itself, whose CPU kernels quantize activations to 8 bits as llama.cpp's CPU
//    backend does: that rounding alone moves SmolLM2's logits by NMSE ~7e-3 (measured: CPU Q4_1
//    against CPU F32 copy 7.3e-3, CUDA against the F32 copy 8.5e-7, on the host emulation), so
//    the first step is held to 2e-2 and the first divergent token is reported, not required.
TEST_CASE("gpu model: SmolLM2 Q4_1 greedy 64 tokens on CUDA equal the CPU's", "[gpu][model]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  auto path = DefaultModelPath();
  if (!path) LMS_SKIP("the default model has not been pulled");
  auto cpu = MakeCpuBackend({0});
  auto gpu = Cuda();
  const std::string f32_path = WriteF32Copy(*path);
  auto mc = Model::Load(*path, *cpu);
  auto mf = Model::Load(f32_path, *cpu);
  auto mg = Model::Load(*path, *gpu);
  REQUIRE(mc.ok());
  REQUIRE(mf.ok());
  REQUIRE(mg.ok());
  for (const char* text : {"The capital of France is", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number"}) {
    CAPTURE(text);
    const auto prompt = (*mc)->tokenizer().Encode(text, true, false);
    const Generated f = GreedyGenerate(**mf, *cpu, prompt, 64);
    const Generated g = GreedyGenerate(**mg, *gpu, prompt, 64);
    for (size_t i = 0; i < f.tokens.size() && f.tokens[i] == g.tokens[i]; ++i) {
      CAPTURE(i);
      CHECK(Nmse(f.logits[i], g.logits[i]) < 2e-4);
    }
    CHECK(f.tokens == g.tokens);
    // Against the Q4_1 CPU run (8-bit activations): reported.
    const Generated c = GreedyGenerate(**mc, *cpu, prompt, 64);
    size_t first = 0;
    while (first < c.tokens.size() && c.tokens[first] == g.tokens[first]) ++first;
    const double nmse0 = Nmse(c.logits[0], g.logits[0]);
    std::printf("SmolLM2 on CUDA against the CPU's Q4_1 kernels (8-bit activations): first step NMSE %.3g, ", nmse0);
    if (first < c.tokens.size()) {
      const auto& row = c.logits[first];
      std::printf("first divergence at token %zu: cpu %d (logit %.4f), cuda %d (cpu logit %.4f)\n", first,
                  c.tokens[first], row[c.tokens[first]], g.tokens[first], row[g.tokens[first]]);
    } else {
      std::printf("the same 64 tokens\n");
    }
    CHECK(nmse0 < 2e-2);
  }
  std::remove(f32_path.c_str());
}

TEST_CASE("gpu model: tiny random models' logits on CUDA match the CPU's", "[gpu][model]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  for (TensorType type : {TensorType::kF32, TensorType::kQ8_0, TensorType::kQ4_K}) {
    CAPTURE(TensorTypeName(type));
    TinySpec spec;
    spec.matrix_type = type;
    spec.d_model = 256;
    spec.d_ff = 512;
    spec.n_heads = 8;
    spec.n_kv_heads = 2;
    spec.n_vocab = 300;
    auto bytes = MakeTinyModel(spec);
    const std::string path = TempDir() + "/gpu-tiny-" + std::string(TensorTypeName(type)) + ".gguf";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    auto cpu = MakeCpuBackend({2});
    auto gpu = Cuda();
    auto mc = Model::Load(path, *cpu);
    auto mg = Model::Load(path, *gpu);
    REQUIRE(mc.ok());
    REQUIRE(mg.ok());
    std::vector<int32_t> prompt;
    for (int i = 0; i < 45; ++i) prompt.push_back((i * 37 + 5) % 300);
    const Generated c = GreedyGenerate(**mc, *cpu, prompt, 12);
    const Generated g = GreedyGenerate(**mg, *gpu, prompt, 12);
    CHECK(Nmse(c.logits[0], g.logits[0]) < 1e-3);
  }
}

// Greedy tokens of each prompt served together by the engine (chunked prompts beside other
// requests' decodes) equal single-sequence generation on the same backend.
void CheckEngineInvariance(const Model& model, Backend& backend, const std::vector<std::vector<int32_t>>& prompts) {
  serve::EngineOptions o;
  o.token_budget = 24;
  o.max_running = 4;
  o.n_ctx = 512;
  auto core = serve::EngineCore::Create(model, backend, o);
  REQUIRE(core.ok());
  std::vector<std::shared_ptr<serve::RequestChannel>> chans;
  for (const auto& p : prompts) {
    serve::Request r;
    r.prompt = p;
    r.params.sampling.temperature = 0;
    r.params.max_tokens = 16;
    r.params.ignore_eos = true;
    chans.push_back(std::make_shared<serve::RequestChannel>(1));
    REQUIRE((*core)->Add(r, chans.back()).ok());
  }
  for (int i = 0; i < 10000 && (*core)->HasWork(); ++i) REQUIRE((*core)->Step().ok());
  for (size_t i = 0; i < prompts.size(); ++i) {
    CAPTURE(i);
    std::vector<int32_t> batched;
    serve::StreamEvent e;
    while (chans[i]->Next(e, std::chrono::milliseconds(0))) {
      if (e.token >= 0) batched.push_back(e.token);
    }
    SessionOptions so;
    so.n_ctx = 512;
    auto s = Session::Create(model, backend, so);
    REQUIRE(s.ok());
    SamplingParams sp;
    sp.temperature = 0;
    Sampler sampler(sp);
    GenerateOptions go;
    go.max_tokens = 16;
    go.ignore_eos = true;
    auto r = Generate(**s, sampler, prompts[i], go);
    REQUIRE(r.ok());
    CHECK(batched.size() == 16);
    CHECK(batched == r->tokens);
  }
}

TEST_CASE("gpu model: the serving engine's greedy tokens on CUDA are the same batched and alone (SmolLM2)",
          "[gpu][model][engine]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  auto path = DefaultModelPath();
  if (!path) LMS_SKIP("the default model has not been pulled");
  auto gpu = Cuda();
  auto model = Model::Load(*path, *gpu);
  REQUIRE(model.ok());
  const Tokenizer& tok = (*model)->tokenizer();
  std::vector<std::vector<int32_t>> prompts;
  for (const char* t : {"The capital of France is", "Write a haiku about the sea.\n", "def fibonacci(n):",
                        "Once upon a time, in a small village by the mountains, there lived"}) {
    prompts.push_back(tok.Encode(t, true, false));
  }
  CheckEngineInvariance(**model, *gpu, prompts);
}

// A random model of 8/2 heads and 300 tokens written to a temporary file named `name`.
std::string TinyFile(TensorType type, int d_model, int d_ff, const std::string& name) {
  TinySpec spec;
  spec.matrix_type = type;
  spec.d_model = d_model;
  spec.d_ff = d_ff;
  spec.n_heads = 8;
  spec.n_kv_heads = 2;
  spec.n_vocab = 300;
  auto bytes = MakeTinyModel(spec);
  const std::string path = TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

std::string TinyQ8File() { return TinyFile(TensorType::kQ8_0, 256, 512, "gpu-engine-tiny.gguf"); }

// Four prompts of 5 to 64 tokens for the random models' 300-token vocabulary.
std::vector<std::vector<int32_t>> EnginePrompts() {
  std::vector<std::vector<int32_t>> prompts;
  for (int len : {5, 40, 17, 64}) {
    std::vector<int32_t> p;
    for (int i = 0; i < len; ++i) p.push_back((len * 31 + i * 7 + i * i) % 290);
    prompts.push_back(p);
  }
  return prompts;
}

TEST_CASE("gpu model: the serving engine's greedy tokens on CUDA are the same batched and alone (random model)",
          "[gpu][model][engine]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  const std::string path = TinyQ8File();
  for (bool graphs : {false, true}) {
    CAPTURE(graphs);
    auto gpu = Cuda(graphs);
    auto model = Model::Load(path, *gpu);
    REQUIRE(model.ok());
    CheckEngineInvariance(**model, *gpu, EnginePrompts());
  }
}

TEST_CASE("gpu model: CUDA graphs replay the decode step with the same logits as plain launches", "[gpu][model][graphs]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  const std::string path = TinyQ8File();
  gpu::CudaGraphStats stats;
  auto plain = Cuda(false);
  auto graphed = Cuda(true, &stats);
  auto mp = Model::Load(path, *plain);
  auto mg = Model::Load(path, *graphed);
  REQUIRE(mp.ok());
  REQUIRE(mg.ok());
  std::vector<int32_t> prompt;
  for (int i = 0; i < 45; ++i) prompt.push_back((i * 37 + 5) % 290);
  // 40 steps: the block tables grow past block boundaries (and past a padded width once), so
  // some steps must be captured again while the rest replay.
  const Generated a = GreedyGenerate(**mp, *plain, prompt, 40);
  const Generated b = GreedyGenerate(**mg, *graphed, prompt, 40);
  CHECK(a.tokens == b.tokens);
  for (size_t i = 0; i < a.logits.size(); ++i) {
    CAPTURE(i);
    CHECK(a.logits[i] == b.logits[i]);
  }
  // Each distinct decode layout runs directly once, is captured the second time, and replays
  // after that.
  INFO("captures " << stats.captures << ", replays " << stats.replays << ", direct " << stats.direct);
  CHECK(stats.captures >= 2);
  CHECK(stats.captures <= 6);
  CHECK(stats.direct >= stats.captures);
  CHECK(stats.direct <= 8);
  CHECK(stats.replays >= 28);  // 41 steps: the prompt and 40 single tokens
  CHECK(stats.launches_replayed >= stats.replays * 10);
}

// Programmatic dependent launches (gpu/ops/launch.cuh) change when a kernel may start, never
// what it computes: the same tokens and bit-identical logits as plain launches, with graphs and
// without. BF16 matrices at least 1024 wide, so the mat-vec kernels take the 16-bit path and
// read their first weights before they wait.
TEST_CASE("gpu model: dependent launches give the same logits as plain launches", "[gpu][model][pdl]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  const std::string path = TinyFile(TensorType::kBF16, 1024, 1024, "gpu-pdl-tiny.gguf");
  struct Off {  // the switch is process-wide: leave it off for the other tests
    ~Off() { gpu::SetDependentLaunches(false); }
  } off;
  gpu::SetDependentLaunches(false);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 20; ++i) prompt.push_back((i * 37 + 5) % 290);
  auto plain = Cuda();
  auto mp = Model::Load(path, *plain);
  REQUIRE(mp.ok());
  const Generated a = GreedyGenerate(**mp, *plain, prompt, 8);
  for (bool graphs : {false, true}) {
    CAPTURE(graphs);
    gpu::CudaBackendOptions o;
    o.graphs = graphs;
    o.dependent_launches = true;
    auto b = gpu::MakeCudaBackend(0, o);
    REQUIRE(b.ok());
    if (!gpu::DependentLaunches()) LMS_SKIP("dependent launches need compute capability 9.0; this card is older");
    auto mb = Model::Load(path, **b);
    REQUIRE(mb.ok());
    const Generated g = GreedyGenerate(**mb, **b, prompt, 8);
    CHECK(a.tokens == g.tokens);
    for (size_t i = 0; i < a.logits.size(); ++i) {
      CAPTURE(i);
      CHECK(a.logits[i] == g.logits[i]);
    }
  }
  // The serving engine's steps (several sequences, mat-vec products of up to 8 rows, split
  // attention and its combine) under dependent launches and graphs: the same tokens batched
  // and alone.
  gpu::CudaBackendOptions o;
  o.graphs = true;
  o.dependent_launches = true;
  auto e = gpu::MakeCudaBackend(0, o);
  REQUIRE(e.ok());
  auto me = Model::Load(TinyQ8File(), **e);
  REQUIRE(me.ok());
  CheckEngineInvariance(**me, **e, EnginePrompts());
}

}  // namespace
}  // namespace lms::test
