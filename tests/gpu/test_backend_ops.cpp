// Every backend op on the CPU and the CUDA backend with the same inputs, compared by normalized
// mean squared error (llama.cpp's test-backend-ops method). Shapes: SmolLM2's (d 576, ff 1536,
// 9 query / 3 KV heads of 64, vocab 49152) and awkward ones (odd token counts, KV block
// boundaries, block tables with holes). Tolerances: 1e-7 for the element-wise ops (same float
// formula; only the order of a sum or a libm ulp differs), 1e-5 for attention (exp and sum
// order), 5e-4 for matrix products (the CPU rounds activations to 8 bits for quantized weights,
// the GPU to f16 on its cuBLAS path; test-backend-ops uses the same 5e-4).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/tensor/fp16.h"
#include "gpu/ops/prefill_tiles.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

TEST_CASE("gpu ops: embedding rows of every weight type", "[gpu][ops]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  const int vocab = 1000, d = 768;  // a whole number of K-quant super-blocks (256)
  BatchLayout batch = MakeBatch({0}, {37}, {{0, 1, 2}}, 16, vocab);
  batch.tokens[0] = 0;
  batch.tokens[36] = vocab - 1;
  for (TensorType type : kGpuWeightTypes) {
    CAPTURE(TensorTypeName(type));
    Twin table = p.Weight(type, vocab, d, Encode(type, RandomFloats(size_t{vocab} * d, 1), vocab, d));
    Twin out = p.F32(37, d, std::vector<float>(37 * d));
    REQUIRE(p.cpu().BeginBatch(batch).ok());
    REQUIRE(p.gpu().BeginBatch(batch).ok());
    REQUIRE(p.cpu().Embed(table.cpu, out.cpu).ok());
    REQUIRE(p.gpu().Embed(table.gpu, out.gpu).ok());
    CHECK(Nmse(p.ReadCpu(out.cpu), p.ReadGpu(out.gpu)) == 0.0);  // dequantization is exact on both
  }
  batch.tokens[3] = vocab;
  REQUIRE(p.gpu().BeginBatch(batch).ok());
  Twin table = p.Weight(TensorType::kF32, vocab, d, Encode(TensorType::kF32, RandomFloats(size_t{vocab} * d, 2), vocab, d));
  Twin out = p.F32(37, d, std::vector<float>(37 * d));
  CHECK_FALSE(p.gpu().Embed(table.gpu, out.gpu).ok());  // out-of-vocabulary ids are refused
}

TEST_CASE("gpu ops: RMSNorm, SwiGLU, add, gather", "[gpu][ops]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  for (int rows : {1, 7, 64}) {
    for (int n : {576, 1536, 33}) {
      CAPTURE(rows, n);
      const auto xv = RandomFloats(size_t(rows) * n, 3, 2.0f), yv = RandomFloats(size_t(rows) * n, 4);
      Twin x = p.F32(rows, n, xv), y = p.F32(rows, n, yv), out = p.F32(rows, n, std::vector<float>(rows * n));
      std::vector<float> wv = RandomFloats(n, 5);
      Twin w = p.Weight(TensorType::kF32, 1, n, Encode(TensorType::kF32, wv, 1, n));
      REQUIRE(p.cpu().RmsNorm(x.cpu, w.cpu, 1e-5f, out.cpu).ok());
      REQUIRE(p.gpu().RmsNorm(x.gpu, w.gpu, 1e-5f, out.gpu).ok());
      CHECK(Nmse(p.ReadCpu(out.cpu), p.ReadGpu(out.gpu)) < kElementwiseTol);

      REQUIRE(p.cpu().SwiGlu(x.cpu, y.cpu, out.cpu).ok());
      REQUIRE(p.gpu().SwiGlu(x.gpu, y.gpu, out.gpu).ok());
      CHECK(Nmse(p.ReadCpu(out.cpu), p.ReadGpu(out.gpu)) < kElementwiseTol);

      REQUIRE(p.cpu().AddInPlace(x.cpu, y.cpu).ok());
      REQUIRE(p.gpu().AddInPlace(x.gpu, y.gpu).ok());
      CHECK(Nmse(p.ReadCpu(x.cpu), p.ReadGpu(x.gpu)) == 0.0);
    }
  }
  BatchLayout batch = MakeBatch({0}, {9}, {{0}}, 16, 100);
  batch.logit_rows = {8, 0, 4};
  const int n = 576;
  Twin x = p.F32(9, n, RandomFloats(9 * n, 6)), out = p.F32(3, n, std::vector<float>(3 * n));
  REQUIRE(p.cpu().BeginBatch(batch).ok());
  REQUIRE(p.gpu().BeginBatch(batch).ok());
  REQUIRE(p.cpu().GatherLogitRows(x.cpu, out.cpu).ok());
  REQUIRE(p.gpu().GatherLogitRows(x.gpu, out.gpu).ok());
  CHECK(Nmse(p.ReadCpu(out.cpu), p.ReadGpu(out.gpu)) == 0.0);
}

TEST_CASE("gpu ops: RoPE, normal and NeoX, partial rotation", "[gpu][ops]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  // Positions up to 4100: angles large enough that the float recurrence matters.
  BatchLayout batch = MakeBatch({0, 4090, 15}, {5, 10, 2}, {{0}, std::vector<int32_t>(300, 1), {2, 3}}, 16, 100);
  for (bool neox : {false, true}) {
    for (int n_dims : {64, 32}) {
      CAPTURE(neox, n_dims);
      RopeParams rp{n_dims, 100000.0f, 1.0f, neox};
      const int T = batch.n_tokens();
      Twin q = p.F32(T, 9 * 64, RandomFloats(T * 9 * 64, 7)), k = p.F32(T, 3 * 64, RandomFloats(T * 3 * 64, 8));
      REQUIRE(p.cpu().BeginBatch(batch).ok());
      REQUIRE(p.gpu().BeginBatch(batch).ok());
      REQUIRE(p.cpu().Rope(q.cpu, k.cpu, 64, rp).ok());
      REQUIRE(p.gpu().Rope(q.gpu, k.gpu, 64, rp).ok());
      CHECK(Nmse(p.ReadCpu(q.cpu), p.ReadGpu(q.gpu)) < kElementwiseTol);
      CHECK(Nmse(p.ReadCpu(k.cpu), p.ReadGpu(k.gpu)) < kElementwiseTol);
    }
  }
}

struct AttnShape {
  int n_heads, n_kv_heads, head_dim;
};

TEST_CASE("gpu ops: StoreKv and paged attention over block tables with holes", "[gpu][ops][attention]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  const int bs = 16, n_blocks = 24;
  // seq 0: a 37-token prompt chunk from 0 (crosses two block boundaries), blocks scattered;
  // seq 1: one decode token at position 50 over earlier cache contents; seq 2: decode at 15
  // (last slot of a block); seq 3: decode at 16 (first slot of the next); seq 4: a 5-token
  // chunk continuing at 29.
  const std::vector<std::vector<int32_t>> tables = {{7, 2, 19}, {3, 11, 0, 22}, {5}, {9, 13}, {21, 4, 17}};
  BatchLayout batch = MakeBatch({0, 50, 15, 16, 29}, {37, 1, 1, 1, 5}, tables, bs, 100);
  const int T = batch.n_tokens();
  for (AttnShape s : {AttnShape{9, 3, 64}, AttnShape{32, 8, 64}, AttnShape{16, 2, 128}, AttnShape{4, 4, 32}}) {
    for (TensorType kv_type : {TensorType::kF16, TensorType::kF32}) {
      CAPTURE(s.n_heads, s.n_kv_heads, s.head_dim, TensorTypeName(kv_type));
      const int qd = s.n_heads * s.head_dim, kvd = s.n_kv_heads * s.head_dim;
      // The whole cache starts with the same random contents on both (earlier tokens).
      const auto fill = RandomFloats(size_t(n_blocks) * bs * kvd, 9);
      std::vector<uint8_t> fill_bytes = Encode(kv_type, fill, n_blocks * bs, kvd);
      Twin kc = p.Tensor(kv_type, n_blocks * bs, kvd, fill_bytes.data());
      Twin vc = p.Tensor(kv_type, n_blocks * bs, kvd, Encode(kv_type, RandomFloats(fill.size(), 10), n_blocks * bs, kvd).data());
      Twin q = p.F32(T, qd, RandomFloats(size_t(T) * qd, 11)), k = p.F32(T, kvd, RandomFloats(size_t(T) * kvd, 12));
      Twin v = p.F32(T, kvd, RandomFloats(size_t(T) * kvd, 13)), out = p.F32(T, qd, std::vector<float>(size_t(T) * qd));
      AttentionParams ap{s.n_heads, s.n_kv_heads, s.head_dim, bs, 1.0f / std::sqrt(float(s.head_dim))};
      REQUIRE(p.cpu().BeginBatch(batch).ok());
      REQUIRE(p.gpu().BeginBatch(batch).ok());
      REQUIRE(p.cpu().StoreKv(k.cpu, v.cpu, kc.cpu, vc.cpu).ok());
      REQUIRE(p.gpu().StoreKv(k.gpu, v.gpu, kc.gpu, vc.gpu).ok());
      CHECK(p.ReadBytes(p.cpu(), kc.cpu) == p.ReadBytes(p.gpu(), kc.gpu));
      CHECK(p.ReadBytes(p.cpu(), vc.cpu) == p.ReadBytes(p.gpu(), vc.gpu));
      REQUIRE(p.cpu().Attention(q.cpu, kc.cpu, vc.cpu, ap, out.cpu).ok());
      REQUIRE(p.gpu().Attention(q.gpu, kc.gpu, vc.gpu, ap, out.gpu).ok());
      CHECK(Nmse(p.ReadCpu(out.cpu), p.ReadGpu(out.gpu)) < kAttentionTol);
    }
  }
}

// A decode step of one or two tokens is far too small to fill a GPU with a block per (KV head,
// token), so the backend splits each token's positions over many blocks and merges their partial
// softmaxes in a second launch: long contexts, positions at block edges, every head shape.
TEST_CASE("gpu ops: paged attention of a decode step split over positions", "[gpu][ops][attention]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  const int bs = 16, n_blocks = 64;
  std::vector<int32_t> long_table(n_blocks);
  for (int i = 0; i < n_blocks; ++i) long_table[i] = (i * 37 + 11) % n_blocks;  // scattered
  const std::vector<std::vector<int>> starts = {{0}, {1}, {700}, {1023}, {47, 16}, {5, 400}};
  for (AttnShape s : {AttnShape{9, 3, 64}, AttnShape{32, 8, 64}, AttnShape{16, 2, 128}, AttnShape{4, 4, 32}}) {
    for (const auto& start : starts) {
      CAPTURE(s.n_heads, s.n_kv_heads, s.head_dim, start[0], start.size());
      const std::vector<std::vector<int32_t>> tables(start.size(), long_table);
      BatchLayout batch = MakeBatch(start, std::vector<int>(start.size(), 1), tables, bs, 100);
      const int T = batch.n_tokens(), qd = s.n_heads * s.head_dim, kvd = s.n_kv_heads * s.head_dim;
      const auto fill = Encode(TensorType::kF16, RandomFloats(size_t(n_blocks) * bs * kvd, 30, 2.0f), n_blocks * bs, kvd);
      Twin kc = p.Tensor(TensorType::kF16, n_blocks * bs, kvd, fill.data());
      Twin vc = p.Tensor(TensorType::kF16, n_blocks * bs, kvd,
                         Encode(TensorType::kF16, RandomFloats(fill.size() / 2, 31), n_blocks * bs, kvd).data());
      Twin q = p.F32(T, qd, RandomFloats(size_t(T) * qd, 32)), out = p.F32(T, qd, std::vector<float>(size_t(T) * qd));
      AttentionParams ap{s.n_heads, s.n_kv_heads, s.head_dim, bs, 1.0f / std::sqrt(float(s.head_dim))};
      REQUIRE(p.cpu().BeginBatch(batch).ok());
      REQUIRE(p.gpu().BeginBatch(batch).ok());
      REQUIRE(p.cpu().Attention(q.cpu, kc.cpu, vc.cpu, ap, out.cpu).ok());
      REQUIRE(p.gpu().Attention(q.gpu, kc.gpu, vc.gpu, ap, out.gpu).ok());
      CHECK(Nmse(p.ReadCpu(out.cpu), p.ReadGpu(out.gpu)) < kAttentionTol);
    }
  }
}

// Host code, no GPU needed: which rows the tiled prefill takes.
TEST_CASE("gpu ops: prefill tiles cover runs of consecutive positions", "[gpu][ops][attention]") {
  // seq 0: 130 rows from 20; seq 1: one decode row; seq 2: 16 rows from 0 (exactly the least
  // run); seq 3: 15 rows (too few); seq 0 again after a gap in positions: 20 rows.
  const std::vector<int32_t> seq = [] {
    std::vector<int32_t> v(130, 0);
    v.push_back(1);
    v.insert(v.end(), 16, 2);
    v.insert(v.end(), 15, 3);
    v.insert(v.end(), 20, 0);
    return v;
  }();
  std::vector<int32_t> pos;
  for (int i = 0; i < 130; ++i) pos.push_back(20 + i);
  pos.push_back(50);
  for (int i = 0; i < 16; ++i) pos.push_back(i);
  for (int i = 0; i < 15; ++i) pos.push_back(5 + i);
  for (int i = 0; i < 20; ++i) pos.push_back(300 + i);
  const gpu::PrefillTiles t = gpu::MakePrefillTiles(pos, seq, gpu::kPrefillMinRun);
  const std::vector<int32_t> want = {0, 64, 0, 20, 64, 64, 0, 84, 128, 2, 0, 148, 131, 16, 2, 0, 162, 20, 0, 300};
  CHECK(t.tiles == want);
  CHECK(t.count() == 5);
  int covered = 0;
  for (int32_t x : t.tiled) covered += x;
  CHECK(covered == 130 + 16 + 20);
  CHECK(t.tiled[130] == 0);  // the decode row
  CHECK(t.tiled[147] == 0);  // the short run
  CHECK(t.tiled[161] == 0);
  CHECK(gpu::MakePrefillTiles({}, {}, gpu::kPrefillMinRun).count() == 0);
}

// The tiled prefill kernel (f16 tensor-core operands) against the CPU and against the paged
// kernel, on a batch that mixes long prompt chunks, short ones and decode rows. f16 rounding of
// q, K, V and the probabilities: NMSE below 1e-4 (measured values are printed).
TEST_CASE("gpu ops: tiled prefill attention matches the paged kernel", "[gpu][ops][attention]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  gpu::CudaBackendOptions tiled;
  tiled.tiled_prefill = true;
  BackendPair p(tiled);
  BackendPair plain;
  const int bs = 16, n_blocks = 24;
  // seq 0: 130 rows from 20 (three tiles, the last of 2 rows); seq 1: decode at 50; seq 2: 16
  // rows from 0; seq 3: 15 rows from 5 (paged); seq 4: 70 rows from 0.
  const std::vector<std::vector<int32_t>> tables = {
      {7, 2, 19, 1, 12, 23, 8, 15, 6, 10}, {3, 11, 0, 22}, {5}, {9, 13}, {21, 4, 17, 14, 16}};
  BatchLayout batch = MakeBatch({20, 50, 0, 5, 0}, {130, 1, 16, 15, 70}, tables, bs, 100);
  const int T = batch.n_tokens();
  for (AttnShape s : {AttnShape{9, 3, 64}, AttnShape{16, 2, 128}, AttnShape{4, 4, 32}}) {
    for (TensorType kv_type : {TensorType::kF16, TensorType::kF32}) {
      CAPTURE(s.n_heads, s.n_kv_heads, s.head_dim, TensorTypeName(kv_type));
      const int qd = s.n_heads * s.head_dim, kvd = s.n_kv_heads * s.head_dim;
      const auto fill_k = Encode(kv_type, RandomFloats(size_t(n_blocks) * bs * kvd, 15), n_blocks * bs, kvd);
      const auto fill_v = Encode(kv_type, RandomFloats(size_t(n_blocks) * bs * kvd, 16), n_blocks * bs, kvd);
      const auto qv = RandomFloats(size_t(T) * qd, 17), kv = RandomFloats(size_t(T) * kvd, 18);
      const auto vv = RandomFloats(size_t(T) * kvd, 19);
      AttentionParams ap{s.n_heads, s.n_kv_heads, s.head_dim, bs, 1.0f / std::sqrt(float(s.head_dim))};
      std::vector<float> outs[3];
      int i = 0;
      for (BackendPair* pair : {&p, &plain}) {
        Twin kc = pair->Tensor(kv_type, n_blocks * bs, kvd, fill_k.data());
        Twin vc = pair->Tensor(kv_type, n_blocks * bs, kvd, fill_v.data());
        Twin q = pair->F32(T, qd, qv), k = pair->F32(T, kvd, kv), v = pair->F32(T, kvd, vv);
        Twin out = pair->F32(T, qd, std::vector<float>(size_t(T) * qd));
        REQUIRE(pair->gpu().BeginBatch(batch).ok());
        REQUIRE(pair->gpu().StoreKv(k.gpu, v.gpu, kc.gpu, vc.gpu).ok());
        REQUIRE(pair->gpu().Attention(q.gpu, kc.gpu, vc.gpu, ap, out.gpu).ok());
        outs[i++] = pair->ReadGpu(out.gpu);
        if (pair == &p) {
          REQUIRE(pair->cpu().BeginBatch(batch).ok());
          REQUIRE(pair->cpu().StoreKv(k.cpu, v.cpu, kc.cpu, vc.cpu).ok());
          REQUIRE(pair->cpu().Attention(q.cpu, kc.cpu, vc.cpu, ap, out.cpu).ok());
          outs[2] = pair->ReadCpu(out.cpu);
        }
      }
      const double vs_cpu = Nmse(outs[2], outs[0]), vs_paged = Nmse(outs[1], outs[0]);
      std::printf("tiled prefill H=%d KV=%d hd=%d %s: NMSE against the CPU %.2e, against the paged kernel %.2e\n",
                  s.n_heads, s.n_kv_heads, s.head_dim, std::string(TensorTypeName(kv_type)).c_str(), vs_cpu, vs_paged);
      CHECK(vs_cpu < 1e-4);
      CHECK(vs_paged < 1e-4);
      CHECK(Nmse(outs[2], outs[1]) < kAttentionTol);  // the paged kernel as before
      // The tiled kernel did run: its f16 rounding shows in the rows it took.
      size_t differ = 0;
      for (int row = 0; row < 130; ++row) {
        for (int c = 0; c < qd; ++c) differ += outs[0][size_t(row) * qd + c] != outs[1][size_t(row) * qd + c];
      }
      CHECK(differ > 0);
      // Rows the paged kernel keeps (decode and the short run) are the paged kernel's bits.
      for (int row : {130, 147, 150, 160}) {
        for (int c = 0; c < qd; ++c) CHECK(outs[0][size_t(row) * qd + c] == outs[1][size_t(row) * qd + c]);
      }
    }
  }
}

TEST_CASE("gpu ops: CopyRows copies KV blocks on the device", "[gpu][ops]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  const auto vals = RandomFloats(64 * 192, 14);
  Twin t = p.F32(64, 192, vals);
  REQUIRE(p.gpu().CopyRows(t.gpu, 16, 48, 16).ok());
  std::vector<float> want = vals;
  std::memcpy(&want[48 * 192], &vals[16 * 192], 16 * 192 * sizeof(float));
  CHECK(p.ReadGpu(t.gpu) == want);
}

TEST_CASE("gpu ops: linear layers of every weight type, mat-vec and GEMM paths", "[gpu][ops][linear]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  struct Shape {
    int k, n;
  };
  for (TensorType type : kGpuWeightTypes) {
    for (Shape sh : {Shape{576, 576}, Shape{576, 1536}, Shape{1536, 576}, Shape{576, 192}, Shape{768, 100}}) {
      if (sh.k % TypeInfo(type).block_elems != 0) continue;
      Twin w = p.Weight(type, sh.n, sh.k, Encode(type, RandomFloats(size_t(sh.n) * sh.k, 15, 0.05f), sh.n, sh.k));
      // 1..8 rows take the mat-vec kernel, more the cuBLAS path.
      for (int m : {1, 3, 8, 9, 17, 64}) {
        CAPTURE(TensorTypeName(type), sh.k, sh.n, m);
        Twin x = p.F32(m, sh.k, RandomFloats(size_t(m) * sh.k, 16));
        Twin y = p.F32(m, sh.n, std::vector<float>(size_t(m) * sh.n));
        const TensorView cw[] = {w.cpu}, gw[] = {w.gpu}, cy[] = {y.cpu}, gy[] = {y.gpu};
        REQUIRE(p.cpu().Linear(x.cpu, cw, {}, cy).ok());
        REQUIRE(p.gpu().Linear(x.gpu, gw, {}, gy).ok());
        CHECK(Nmse(p.ReadCpu(y.cpu), p.ReadGpu(y.gpu)) < kMatmulTol);
      }
    }
  }
}

// Decode-sized products of two or three weights sharing x run as one mat-vec launch: each output
// must be the same bits as the weight's product alone, and match the CPU.
TEST_CASE("gpu ops: q/k/v and gate/up mat-vec products in one launch", "[gpu][ops][linear]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  setenv("LMS_CUDA_OP_TIMES", "1", 1);  // to count the launches
  BackendPair p;
  unsetenv("LMS_CUDA_OP_TIMES");
  const int d = 576;
  for (TensorType type : kGpuWeightTypes) {
    if (d % TypeInfo(type).block_elems != 0) continue;
    const int rows[] = {576, 192, 192};
    std::vector<Twin> w;
    for (int i = 0; i < 3; ++i) {
      w.push_back(p.Weight(type, rows[i], d, Encode(type, RandomFloats(size_t(rows[i]) * d, 40 + i, 0.05f), rows[i], d)));
    }
    for (int count : {2, 3}) {
      for (int m : {1, 4, 8}) {
        CAPTURE(TensorTypeName(type), count, m);
        Twin x = p.F32(m, d, RandomFloats(size_t(m) * d, 44));
        std::vector<Twin> together, alone, cpu;
        std::vector<TensorView> gw, cw, gy, cy;
        for (int i = 0; i < count; ++i) {
          together.push_back(p.F32(m, rows[i], std::vector<float>(size_t(m) * rows[i])));
          alone.push_back(p.F32(m, rows[i], std::vector<float>(size_t(m) * rows[i])));
          gw.push_back(w[i].gpu);
          cw.push_back(w[i].cpu);
          gy.push_back(together.back().gpu);
          cy.push_back(together.back().cpu);
        }
        REQUIRE(gpu::CudaOpTimes(p.gpu(), true).ok());
        REQUIRE(p.gpu().Linear(x.gpu, gw, {}, gy).ok());
        auto launches = gpu::CudaOpTimes(p.gpu(), true);
        REQUIRE(launches.ok());
        REQUIRE(launches->size() == 1);
        CHECK((*launches)[0].name == "matvec");
        CHECK((*launches)[0].calls == 1);  // one launch for all `count` products
        REQUIRE(p.cpu().Linear(x.cpu, cw, {}, cy).ok());
        for (int i = 0; i < count; ++i) {
          const TensorView one_w[] = {w[i].gpu}, one_y[] = {alone[i].gpu};
          REQUIRE(p.gpu().Linear(x.gpu, one_w, {}, one_y).ok());
          const auto got = p.ReadGpu(together[i].gpu);
          CHECK(got == p.ReadGpu(alone[i].gpu));
          CHECK(Nmse(p.ReadCpu(together[i].cpu), got) < kMatmulTol);
        }
      }
    }
  }
}

TEST_CASE("gpu ops: fused q/k/v linear with biases, and SmolLM2's output head", "[gpu][ops][linear]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  BackendPair p;
  const int d = 576;
  for (int m : {1, 5, 33}) {
    CAPTURE(m);
    Twin x = p.F32(m, d, RandomFloats(size_t(m) * d, 17));
    Twin wq = p.Weight(TensorType::kQ4_1, 576, d, Encode(TensorType::kQ4_1, RandomFloats(576 * d, 18, 0.05f), 576, d));
    Twin wk = p.Weight(TensorType::kQ4_1, 192, d, Encode(TensorType::kQ4_1, RandomFloats(192 * d, 19, 0.05f), 192, d));
    Twin bq = p.Weight(TensorType::kF32, 1, 576, Encode(TensorType::kF32, RandomFloats(576, 20), 1, 576));
    Twin bk = p.Weight(TensorType::kF32, 1, 192, Encode(TensorType::kF32, RandomFloats(192, 21), 1, 192));
    Twin yq = p.F32(m, 576, std::vector<float>(size_t(m) * 576)), yk = p.F32(m, 192, std::vector<float>(size_t(m) * 192));
    const TensorView cw[] = {wq.cpu, wk.cpu}, gw[] = {wq.gpu, wk.gpu}, cb[] = {bq.cpu, bk.cpu}, gb[] = {bq.gpu, bk.gpu};
    const TensorView cy[] = {yq.cpu, yk.cpu}, gy[] = {yq.gpu, yk.gpu};
    REQUIRE(p.cpu().Linear(x.cpu, cw, cb, cy).ok());
    REQUIRE(p.gpu().Linear(x.gpu, gw, gb, gy).ok());
    CHECK(Nmse(p.ReadCpu(yq.cpu), p.ReadGpu(yq.gpu)) < kMatmulTol);
    CHECK(Nmse(p.ReadCpu(yk.cpu), p.ReadGpu(yk.gpu)) < kMatmulTol);
  }
  const int vocab = 49152;
  Twin head = p.Weight(TensorType::kQ8_0, vocab, d, Encode(TensorType::kQ8_0, RandomFloats(size_t(vocab) * d, 22, 0.05f), vocab, d));
  for (int m : {1, 4, 16}) {
    CAPTURE(m);
    Twin x = p.F32(m, d, RandomFloats(size_t(m) * d, 23));
    Twin y = p.F32(m, vocab, std::vector<float>(size_t(m) * vocab));
    const TensorView cw[] = {head.cpu}, gw[] = {head.gpu}, cy[] = {y.cpu}, gy[] = {y.gpu};
    REQUIRE(p.cpu().Linear(x.cpu, cw, {}, cy).ok());
    REQUIRE(p.gpu().Linear(x.gpu, gw, {}, gy).ok());
    CHECK(Nmse(p.ReadCpu(y.cpu), p.ReadGpu(y.gpu)) < kMatmulTol);
  }
}

}  // namespace
}  // namespace lms::test
