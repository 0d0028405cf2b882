// The NCCL pipeline transport: on one GPU, a stage's grouped send to itself and receive arrive
// in stream order behind and ahead of the stage's own work; on two or more GPUs, CUDA training
// with one stage a GPU over NCCL (GPipe and 1F1B, whose neighbours both send before they
// receive) equals a single stage, and a failed step aborts the communicators without hanging.
// Skips where the GPUs are missing.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/net/rank_group.h"
#include "gpu/comm/nccl_transport.h"
#include "gpu/cuda_backend.h"
#include "gpu/train/cuda_train_engine.h"
#include "tests/core/net/rank_test_util.h"
#include "tests/core/train/train_test_util.h"
#include "tests/gpu/cuda_train_test_util.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

int GpuCount() { return static_cast<int>(gpu::ListCudaDevices().size()); }

lms::train::TrainEngineSpec Spec(const std::string& device, int stages, lms::train::ScheduleKind k) {
  return EngineTestSpec(device, "f32", stages, 4, 2, k);
}

}  // namespace

TEST_CASE("nccl pipeline transport: a grouped send to itself keeps stream order", "[gpu][nccl][pipeline]") {
  if (GpuCount() < 1) LMS_SKIP("no CUDA device (or no NVIDIA driver) on this machine");
  auto t = gpu::NcclPipelineTransport::Create({0});
  REQUIRE(t.ok());
  const size_t n = 4099;
  float *a = nullptr, *b = nullptr;
  REQUIRE(cudaSetDevice(0) == cudaSuccess);
  REQUIRE(cudaMalloc(&a, n * sizeof(float)) == cudaSuccess);
  REQUIRE(cudaMalloc(&b, n * sizeof(float)) == cudaSuccess);
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = static_cast<float>(i) * 0.5f - 7.0f;
  // The stage's stream writes the buffer, sends it to itself, then overwrites the source: the
  // receive must hold the first contents (the send ran in between, in stream order).
  REQUIRE(cudaMemcpyAsync(a, want.data(), n * sizeof(float), cudaMemcpyHostToDevice, s) == cudaSuccess);
  gpu::DeviceTransport::Message out{0, lms::train::MessageKind::kActivation, 0, a, n};
  gpu::DeviceTransport::Message in{0, lms::train::MessageKind::kActivation, 0, b, n};
  REQUIRE((*t)->SendRecv(0, out, in, s).ok());
  REQUIRE(cudaMemsetAsync(a, 0, n * sizeof(float), s) == cudaSuccess);
  std::vector<float> got(n);
  REQUIRE(cudaMemcpyAsync(got.data(), b, n * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(got == want);
  CHECK(!(*t)->Send(1, 0, lms::train::MessageKind::kActivation, 0, a, n, s).ok());  // no stage 1
  (*t)->Abort();
  CHECK(!(*t)->Reusable());
  CHECK((*t)->Send(0, 0, lms::train::MessageKind::kActivation, 0, a, n, s).code() == StatusCode::kCancelled);
  cudaStreamDestroy(s);
  cudaFree(a);
  cudaFree(b);
}

TEST_CASE("nccl pipeline: one stage a GPU over NCCL equals a single stage", "[gpu][nccl][pipeline]") {
  const int G = GpuCount();
  if (G < 2) LMS_SKIP("fewer than two GPUs: a pipeline over NCCL needs a GPU a stage");
  gpu::UseNcclForTraining(true);
  const auto one = Spec("cuda:0", 1, lms::train::ScheduleKind::k1F1B);
  const lms::train::ParamLayout layout = lms::train::ParamLayout::For(one.shape);
  const auto params = lms::train::test::RandomParams(one.shape, layout, 3, 0.08f);
  const int64_t rows = 8 * one.shape.seq_len;
  auto in = lms::train::test::RandomTokens(rows, one.shape.n_vocab, 1);
  const auto tg = lms::train::test::RandomTokens(rows, one.shape.n_vocab, 2);
  auto run = [&](const lms::train::TrainEngineSpec& sp, std::vector<float>& g, double& loss) {
    auto e = gpu::train::CreateCudaTrainEngine(sp, layout);
    REQUIRE(e.ok());
    REQUIRE((*e)->SetState(params, nullptr, nullptr).ok());
    auto r = (*e)->ForwardBackward(in.data(), tg.data(), 1.0f / static_cast<float>(rows));
    REQUIRE(r.ok());
    loss = r->loss_sum;
    REQUIRE((*e)->GetGrads(g).ok());
    return (*e)->Describe();
  };
  std::vector<float> g1;
  double l1 = 0;
  run(one, g1, l1);
  double gmax = 0;
  for (float x : g1) gmax = std::max(gmax, double{std::fabs(x)});
  const int S = std::min(G, 4);
  std::string ids = "cuda:0";
  for (int i = 1; i < S; ++i) {
    ids += ',';
    ids += std::to_string(i);
  }
  for (auto k : {lms::train::ScheduleKind::k1F1B, lms::train::ScheduleKind::kGPipe}) {
    CAPTURE(S, lms::train::ScheduleName(k));
    std::vector<float> g;
    double l = 0;
    const std::string how = run(Spec(ids, S, k), g, l);
    CHECK(how.find("NCCL") != std::string::npos);
    CHECK(std::fabs(l - l1) <= 1e-6 * std::fabs(l1));
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, double{std::fabs(g[i] - g1[i])});
    CHECK(worst <= 1e-5 * gmax);
  }
  // A bad token fails the first stage; its neighbours must not hang, and the engine (with a new
  // communicator) trains again afterwards.
  auto e = gpu::train::CreateCudaTrainEngine(Spec(ids, S, lms::train::ScheduleKind::k1F1B), layout);
  REQUIRE(e.ok());
  REQUIRE((*e)->SetState(params, nullptr, nullptr).ok());
  in[0] = one.shape.n_vocab;
  CHECK(!(*e)->ForwardBackward(in.data(), tg.data(), 1.0f).ok());
  in[0] = 0;
  REQUIRE((*e)->ZeroGrads().ok());
  CHECK((*e)->ForwardBackward(in.data(), tg.data(), 1.0f).ok());
  gpu::UseNcclForTraining(false);
}

TEST_CASE("nccl pipeline: processes of a rank group bootstrap NCCL over TCP and train like one process",
          "[gpu][nccl][pipeline][ranks]") {
  // Ranks are threads here, each with its own group connection and engine as a process would
  // have. With a GPU a rank, rank 0's NCCL unique id goes to the others over the group's TCP
  // connections and the stages exchange over NCCL; with fewer GPUs than ranks (NCCL refuses two
  // ranks on one GPU) every rank must agree to send through the host instead.
  const int G = GpuCount();
  if (G < 1) LMS_SKIP("no CUDA device (or no NVIDIA driver) on this machine");
  gpu::UseNcclForTraining(true);
  const Fixture fx = MakeFixture(5, 3);
  const auto& [layout, params, rows, in, tg] = fx;
  const int S = G >= 2 ? std::min(G, 4) : 2;
  for (auto k : {lms::train::ScheduleKind::k1F1B, lms::train::ScheduleKind::kGPipe}) {
    CAPTURE(S, lms::train::ScheduleName(k));
    const auto sp = Spec("cuda:0", S, k);
    const EngineRun ref = RunEngineSteps(sp, layout, {0}, params, in, tg, rows, 3);
    REQUIRE(ref.status.ok());
    const auto ranks = OnRanks<EngineRun>(S, [&](int r, net::RankGroup* g) {
      auto mine = sp;
      mine.ranks = g;
      return RunEngineSteps(mine, layout, {G >= 2 ? r : 0}, params, in, tg, rows, 3);
    });
    CheckRanksMatch(ref, ranks);
    for (const EngineRun& x : ranks) {
      CHECK(x.describe.find(G >= 2 ? "NCCL between ranks" : "through the host") != std::string::npos);
    }
  }
  gpu::UseNcclForTraining(false);
}

}  // namespace lms::test
