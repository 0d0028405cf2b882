// The fused ops a decode step runs on CUDA (core/backend/backend.h: NormLinear, NormLinearSwiGlu,
// LinearAdd, RopeStoreKv), each against
//  - the CPU backend, which runs the ops one after another (the tolerances of
//    test_backend_ops.cpp: 5e-4 for products, 1e-7 for rotations);
//  - the CUDA backend's own unfused ops (Backend:: defaults called on it): the same arithmetic
//    but for where the norm's scale is applied, so within 1e-10 (products) or bit for bit;
// and the launches they take, counted by the op times: one for a decode-sized batch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <map>
#include <string>

#include "core/kv/kv_cache.h"
#include "core/model/gguf.h"
#include "core/model/llama_forward.h"
#include "core/model/weights.h"
#include "gpu/cuda_backend.h"
#include "tests/core/model/tiny_model.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

constexpr double kSameArithmeticTol = 1e-10;

// A pair whose CUDA backend counts its launches.
BackendPair CountingPair() {
  setenv("LMS_CUDA_OP_TIMES", "1", 1);
  BackendPair p;
  unsetenv("LMS_CUDA_OP_TIMES");
  return p;
}

// The launches since the last call, as "name x calls" by name, joined by spaces.
std::string Launches(Backend& gpu) {
  auto totals = gpu::CudaOpTimes(gpu, true);
  REQUIRE(totals.ok());
  std::map<std::string, int64_t> by_name;
  for (const auto& t : *totals) by_name[t.name] += t.calls;
  std::string s;
  for (const auto& [name, calls] : by_name) s += (s.empty() ? "" : " ") + name + "x" + std::to_string(calls);
  return s;
}

Twin Zeros(BackendPair& p, int64_t rows, int64_t cols) {
  return p.F32(rows, cols, std::vector<float>(static_cast<size_t>(rows * cols)));
}

Twin RandomWeight(BackendPair& p, TensorType type, int rows, int cols, uint64_t seed) {
  return p.Weight(type, rows, cols, Encode(type, RandomFloats(size_t(rows) * cols, seed, 0.05f), rows, cols));
}

TEST_CASE("gpu fused ops: RMSNorm and the q/k/v products in one launch", "[gpu][ops][fused]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p = CountingPair();
  const int d = 576, rows[] = {576, 192, 192};
  std::vector<float> gv = RandomFloats(d, 50, 0.5f);
  for (float& g : gv) g += 1.0f;
  Twin g = p.Weight(TensorType::kF32, 1, d, Encode(TensorType::kF32, gv, 1, d));
  for (TensorType type : kGpuWeightTypes) {
    if (d % TypeInfo(type).block_elems != 0) continue;
    std::vector<Twin> w, bias;
    for (int i = 0; i < 3; ++i) {
      w.push_back(RandomWeight(p, type, rows[i], d, 51 + i));
      bias.push_back(p.Weight(TensorType::kF32, 1, rows[i], Encode(TensorType::kF32, RandomFloats(rows[i], 54 + i), 1, rows[i])));
    }
    for (int count : {1, 3}) {
      for (bool biased : {false, true}) {
        for (int m : {1, 4, 8, 9, 17}) {
          CAPTURE(TensorTypeName(type), count, biased, m);
          Twin x = p.F32(m, d, RandomFloats(size_t(m) * d, 57, 3.0f)), xn = Zeros(p, m, d);
          std::vector<Twin> fused, plain, cpu;
          std::vector<TensorView> gw, cw, gb, cb, gy, py, cy;
          for (int i = 0; i < count; ++i) {
            fused.push_back(Zeros(p, m, rows[i]));
            plain.push_back(Zeros(p, m, rows[i]));
            gw.push_back(w[i].gpu);
            cw.push_back(w[i].cpu);
            gb.push_back(bias[i].gpu);
            cb.push_back(bias[i].cpu);
            gy.push_back(fused.back().gpu);
            py.push_back(plain.back().gpu);
            cy.push_back(fused.back().cpu);
          }
          const std::span<const TensorView> g_bias = biased ? std::span<const TensorView>(gb) : std::span<const TensorView>();
          const std::span<const TensorView> c_bias = biased ? std::span<const TensorView>(cb) : std::span<const TensorView>();
          Launches(p.gpu());
          REQUIRE(p.gpu().NormLinear(x.gpu, g.gpu, 1e-5f, xn.gpu, gw, g_bias, gy).ok());
          const std::string launches = Launches(p.gpu());
          if (m <= 8) CHECK(launches == (biased ? "biasx" + std::to_string(count) + " norm_matvecx1" : "norm_matvecx1"));
          REQUIRE(p.gpu().Backend::NormLinear(x.gpu, g.gpu, 1e-5f, xn.gpu, gw, g_bias, py).ok());
          REQUIRE(p.cpu().NormLinear(x.cpu, g.cpu, 1e-5f, xn.cpu, cw, c_bias, cy).ok());
          for (int i = 0; i < count; ++i) {
            const auto got = p.ReadGpu(fused[i].gpu);
            CHECK(Nmse(p.ReadGpu(plain[i].gpu), got) < kSameArithmeticTol);
            CHECK(Nmse(p.ReadCpu(fused[i].cpu), got) < kMatmulTol);
          }
        }
      }
    }
  }
}

TEST_CASE("gpu fused ops: RMSNorm, the gate/up products and SwiGLU in one launch", "[gpu][ops][fused]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p = CountingPair();
  // SmolLM2's widths, and a row of 264 16-byte words: every lane of the F16/BF16 kernels loads
  // its first four words ahead, some go round the four-word loop once, and some take the tail.
  struct Shape {
    int d, ff;
  };
  for (Shape sh : {Shape{576, 1536}, Shape{2112, 96}}) {
    for (TensorType type : kGpuWeightTypes) {
      const int d = sh.d, ff = sh.ff;
      if (d % TypeInfo(type).block_elems != 0) continue;
      std::vector<float> gv = RandomFloats(d, 60, 0.5f);
      for (float& v : gv) v += 1.0f;
      Twin g = p.Weight(TensorType::kF32, 1, d, Encode(TensorType::kF32, gv, 1, d));
      Twin wg = RandomWeight(p, type, ff, d, 61), wu = RandomWeight(p, type, ff, d, 62);
      for (int m : {1, 3, 8, 9}) {
        CAPTURE(TensorTypeName(type), d, m);
        Twin x = p.F32(m, d, RandomFloats(size_t(m) * d, 63, 3.0f)), xn = Zeros(p, m, d);
        Twin gate = Zeros(p, m, ff), up = Zeros(p, m, ff), out = Zeros(p, m, ff), plain = Zeros(p, m, ff);
        Launches(p.gpu());
        REQUIRE(p.gpu().NormLinearSwiGlu(x.gpu, g.gpu, 1e-5f, xn.gpu, wg.gpu, wu.gpu, gate.gpu, up.gpu, out.gpu).ok());
        const std::string launches = Launches(p.gpu());
        if (m <= 8) CHECK(launches == "norm_matvec_swiglux1");
        REQUIRE(p.gpu().Backend::NormLinearSwiGlu(x.gpu, g.gpu, 1e-5f, xn.gpu, wg.gpu, wu.gpu, gate.gpu, up.gpu,
                                                  plain.gpu).ok());
        REQUIRE(p.cpu().NormLinearSwiGlu(x.cpu, g.cpu, 1e-5f, xn.cpu, wg.cpu, wu.cpu, gate.cpu, up.cpu, out.cpu).ok());
        const auto got = p.ReadGpu(out.gpu);
        CHECK(Nmse(p.ReadGpu(plain.gpu), got) < kSameArithmeticTol);
        CHECK(Nmse(p.ReadCpu(out.cpu), got) < kMatmulTol);
      }
    }
  }
}

TEST_CASE("gpu fused ops: a product added to the residual stream", "[gpu][ops][fused]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p = CountingPair();
  struct Shape {
    int k, n;
  };
  for (TensorType type : kGpuWeightTypes) {
    for (Shape sh : {Shape{576, 576}, Shape{1536, 576}}) {
      if (sh.k % TypeInfo(type).block_elems != 0) continue;
      Twin w = RandomWeight(p, type, sh.n, sh.k, 70);
      for (int m : {1, 5, 8, 9, 33}) {
        CAPTURE(TensorTypeName(type), sh.k, m);
        const auto start = RandomFloats(size_t(m) * sh.n, 71, 4.0f);
        Twin x = p.F32(m, sh.k, RandomFloats(size_t(m) * sh.k, 72)), y = Zeros(p, m, sh.n);
        Twin acc = p.F32(m, sh.n, start), plain = p.F32(m, sh.n, start);
        Launches(p.gpu());
        REQUIRE(p.gpu().LinearAdd(x.gpu, w.gpu, y.gpu, acc.gpu).ok());
        const std::string launches = Launches(p.gpu());
        if (m <= 8) {
          CHECK(launches == "matvec_addx1");
        } else {
          CHECK(launches.find("add") == std::string::npos);  // cuBLAS adds (beta 1)
        }
        REQUIRE(p.gpu().Backend::LinearAdd(x.gpu, w.gpu, y.gpu, plain.gpu).ok());
        REQUIRE(p.cpu().LinearAdd(x.cpu, w.cpu, y.cpu, acc.cpu).ok());
        const auto got = p.ReadGpu(acc.gpu);
        if (m <= 8) {
          CHECK(got == p.ReadGpu(plain.gpu));  // acc + sum, rounded once either way
        } else {
          CHECK(Nmse(p.ReadGpu(plain.gpu), got) < kSameArithmeticTol);
        }
        // The product's share of acc against the CPU's.
        std::vector<float> cpu = p.ReadCpu(acc.cpu), gpu_part = got;
        for (size_t i = 0; i < cpu.size(); ++i) {
          cpu[i] -= start[i];
          gpu_part[i] -= start[i];
        }
        CHECK(Nmse(cpu, gpu_part) < kMatmulTol);
      }
    }
  }
}

TEST_CASE("gpu fused ops: RoPE and the KV-cache store in one launch", "[gpu][ops][fused]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p = CountingPair();
  const int bs = 16, n_blocks = 24;
  const std::vector<std::vector<int32_t>> tables = {{7, 2, 19}, {3, 11, 0, 22}, {5}, {9, 13}};
  BatchLayout batch = MakeBatch({0, 50, 15, 29}, {37, 1, 1, 3}, tables, bs, 100);
  const int T = batch.n_tokens();
  struct Shape {
    int n_heads, n_kv_heads, head_dim, n_dims;
  };
  for (Shape s : {Shape{9, 3, 64, 64}, Shape{16, 2, 128, 64}, Shape{4, 4, 32, 32}}) {
    for (bool neox : {false, true}) {
      for (TensorType kv_type : {TensorType::kF16, TensorType::kF32}) {
        CAPTURE(s.n_heads, s.n_kv_heads, s.head_dim, s.n_dims, neox, TensorTypeName(kv_type));
        const int qd = s.n_heads * s.head_dim, kvd = s.n_kv_heads * s.head_dim;
        const auto fill = Encode(kv_type, RandomFloats(size_t(n_blocks) * bs * kvd, 80), n_blocks * bs, kvd);
        const auto qv = RandomFloats(size_t(T) * qd, 81), kv = RandomFloats(size_t(T) * kvd, 82),
                   vv = RandomFloats(size_t(T) * kvd, 83);
        // Fused on the GPU, and the CPU; then the GPU's unfused ops on copies.
        Twin kc = p.Tensor(kv_type, n_blocks * bs, kvd, fill.data()), vc = p.Tensor(kv_type, n_blocks * bs, kvd, fill.data());
        Twin kc2 = p.Tensor(kv_type, n_blocks * bs, kvd, fill.data()), vc2 = p.Tensor(kv_type, n_blocks * bs, kvd, fill.data());
        Twin q = p.F32(T, qd, qv), k = p.F32(T, kvd, kv), v = p.F32(T, kvd, vv);
        Twin q2 = p.F32(T, qd, qv), k2 = p.F32(T, kvd, kv);
        RopeParams rp{s.n_dims, 10000.0f, 1.0f, neox};
        REQUIRE(p.cpu().BeginBatch(batch).ok());
        REQUIRE(p.gpu().BeginBatch(batch).ok());
        Launches(p.gpu());
        REQUIRE(p.gpu().RopeStoreKv(q.gpu, k.gpu, v.gpu, s.head_dim, rp, kc.gpu, vc.gpu).ok());
        CHECK(Launches(p.gpu()) == "rope_store_kvx1");
        REQUIRE(p.cpu().RopeStoreKv(q.cpu, k.cpu, v.cpu, s.head_dim, rp, kc.cpu, vc.cpu).ok());
        REQUIRE(p.gpu().Backend::RopeStoreKv(q2.gpu, k2.gpu, v.gpu, s.head_dim, rp, kc2.gpu, vc2.gpu).ok());
        CHECK(p.ReadGpu(q.gpu) == p.ReadGpu(q2.gpu));
        CHECK(p.ReadGpu(k.gpu) == p.ReadGpu(k2.gpu));
        CHECK(p.ReadBytes(p.gpu(), kc.gpu) == p.ReadBytes(p.gpu(), kc2.gpu));
        CHECK(p.ReadBytes(p.gpu(), vc.gpu) == p.ReadBytes(p.gpu(), vc2.gpu));
        CHECK(Nmse(p.ReadCpu(q.cpu), p.ReadGpu(q.gpu)) < kElementwiseTol);
        CHECK(Nmse(p.ReadCpu(k.cpu), p.ReadGpu(k.gpu)) < kElementwiseTol);
        CHECK(p.ReadBytes(p.cpu(), vc.cpu) == p.ReadBytes(p.gpu(), vc.gpu));  // v is stored as it is
      }
    }
  }
}

TEST_CASE("gpu fused ops: the greedy choice on the device", "[gpu][ops][fused]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p = CountingPair();
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  for (int n : {5, 33, 300, 49152}) {
    for (int rows : {1, 3, 70}) {
      CAPTURE(n, rows);
      std::vector<float> v = RandomFloats(size_t(rows) * n, 90, 4.0f);
      // Row 0: its maximum twice (the first must win), after a NaN. Row 1: nothing above -inf.
      // Row 2: a tie at the end of two threads' strides. Others: random.
      const float big = 100.0f;
      if (n >= 5) {
        v[0] = nan;
        v[2] = big;
        v[size_t(n) - 1] = big;
      }
      if (rows > 1) std::fill(v.begin() + n, v.begin() + 2 * n, -inf);
      if (rows > 2 && n >= 300) v[2 * size_t(n) + 299] = v[2 * size_t(n) + 43] = big;
      Twin x = p.F32(rows, n, v);
      std::vector<int32_t> cpu(rows, -1), gpu(rows, -1);
      REQUIRE(p.cpu().ArgMaxRows(x.cpu, cpu.data()).ok());
      Launches(p.gpu());
      REQUIRE(p.gpu().ArgMaxRows(x.gpu, gpu.data()).ok());
      CHECK(Launches(p.gpu()) == "argmaxx1");
      CHECK(gpu == cpu);
      CHECK(cpu[0] == (n >= 5 ? 2 : cpu[0]));
      if (rows > 1) CHECK(cpu[1] == 0);
      if (rows > 2 && n >= 300) CHECK(cpu[2] == 43);
    }
  }
}

// A tiny model on CUDA: ForwardGreedy's ids are the argmax of Forward's logits, every step.
TEST_CASE("gpu fused ops: ForwardGreedy on a tiny model", "[gpu][ops][fused]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  TinySpec spec;
  spec.d_model = 256;
  spec.d_ff = 512;
  spec.n_heads = 8;
  spec.n_kv_heads = 2;
  spec.n_vocab = 300;
  auto file = gguf::GgufFile::FromBytes(MakeTinyModel(spec));
  REQUIRE(file.ok());
  auto config = ReadModelConfig(**file);
  REQUIRE(config.ok());
  auto backend = gpu::MakeCudaBackend(0);
  REQUIRE(backend.ok());
  auto weights = LoadWeights(**file, *config, **backend);
  REQUIRE(weights.ok());
  auto forward = LlamaForward::Create(*config, *weights, **backend, 16);
  REQUIRE(forward.ok());
  KvCacheOptions o;
  o.block_size = 16;
  o.n_blocks = 8;
  o.type = TensorType::kF16;
  auto kv = KvCache::Create(**backend, *config, o);
  REQUIRE(kv.ok());
  KvSequence seq;
  int32_t next = 7;
  for (int step = 0; step < 6; ++step) {
    // Step 0 feeds 12 tokens (the GEMM path); then one at a time (the fused mat-vec path).
    const int n = step == 0 ? 12 : 1;
    REQUIRE(kv->Reserve(seq, seq.n_tokens + n).ok());
    BatchLayout b;
    b.block_tables.push_back(seq.blocks);
    for (int i = 0; i < n; ++i) {
      b.tokens.push_back(step == 0 ? (i * 37 + 5) % 300 : next);
      b.positions.push_back(seq.n_tokens + i);
      b.seq_of_token.push_back(0);
      b.slots.push_back(kv->Slot(seq, seq.n_tokens + i));
    }
    b.logit_rows = {n - 1};
    std::vector<float> logits(spec.n_vocab);
    int32_t id = -1;
    REQUIRE((*forward)->Forward(b, *kv, logits.data()).ok());
    REQUIRE((*forward)->ForwardGreedy(b, *kv, &id).ok());  // the same slots, rewritten alike
    CAPTURE(step);
    CHECK(id == std::max_element(logits.begin(), logits.end()) - logits.begin());
    seq.n_tokens += n;
    next = id;
  }
}

}  // namespace
}  // namespace lms::test
