// Stages sharing one GPU hand each other device buffers through InProcessDeviceTransport: two
// stage threads with their own streams pass activations forward and gradients back for several
// micro-batches, reusing their send buffers at once; sizes that disagree and an abort give
// errors, not hangs. Skips where no GPU is present.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <thread>
#include <vector>

#include "gpu/pipeline/device_transport.h"
#include "tests/gpu/gpu_test_support.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

std::vector<float> Pattern(int stage, int mb, size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(stage * 1000 + mb) + 0.001f * static_cast<float>(i % 997);
  return v;
}

}  // namespace

TEST_CASE("device transport: two stages on one GPU pass activations and gradients", "[gpu][transport]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  REQUIRE(cudaSetDevice(0) == cudaSuccess);
  gpu::InProcessDeviceTransport t;
  const int M = 6;
  const size_t n = 128 * 576 + 5;
  std::vector<std::vector<float>> got_act(M), got_grad(M);
  Status st0, st1;
  auto stage = [&](int s) {
    cudaSetDevice(0);
    cudaStream_t stream;
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    float *out = nullptr, *in = nullptr;
    cudaMalloc(&out, n * sizeof(float));
    cudaMalloc(&in, n * sizeof(float));
    Status& st = s == 0 ? st0 : st1;
    for (int m = 0; m < M && st.ok(); ++m) {
      if (s == 0) {  // forward out, then (1F1B-like) the gradient of the same micro-batch back
        const auto v = Pattern(0, m, n);
        cudaMemcpyAsync(out, v.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream);
        st = t.Send(0, 1, train::MessageKind::kActivation, m, out, n, stream);
        if (!st.ok()) break;
        st = t.Recv(0, 1, train::MessageKind::kGradient, m, in, n, stream);
        if (!st.ok()) break;
        got_grad[m].resize(n);
        cudaMemcpyAsync(got_grad[m].data(), in, n * sizeof(float), cudaMemcpyDeviceToHost, stream);
        cudaStreamSynchronize(stream);
      } else {
        st = t.Recv(1, 0, train::MessageKind::kActivation, m, in, n, stream);
        if (!st.ok()) break;
        got_act[m].resize(n);
        cudaMemcpyAsync(got_act[m].data(), in, n * sizeof(float), cudaMemcpyDeviceToHost, stream);
        const auto g = Pattern(1, m, n);
        cudaMemcpyAsync(out, g.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream);
        st = t.Send(1, 0, train::MessageKind::kGradient, m, out, n, stream);
        cudaStreamSynchronize(stream);
      }
    }
    cudaStreamSynchronize(stream);
    cudaFree(out);
    cudaFree(in);
    cudaStreamDestroy(stream);
  };
  std::thread a(stage, 0), b(stage, 1);
  a.join();
  b.join();
  REQUIRE(st0.ok());
  REQUIRE(st1.ok());
  for (int m = 0; m < M; ++m) {
    CAPTURE(m);
    CHECK(got_act[m] == Pattern(0, m, n));
    CHECK(got_grad[m] == Pattern(1, m, n));
  }
}

TEST_CASE("device transport: wrong sizes and an abort are errors", "[gpu][transport]") {
  if (auto why = NoGpuReason()) LMS_SKIP(*why);
  REQUIRE(cudaSetDevice(0) == cudaSuccess);
  gpu::InProcessDeviceTransport t;
  float* buf = nullptr;
  REQUIRE(cudaMalloc(&buf, 64 * sizeof(float)) == cudaSuccess);
  REQUIRE(t.Send(0, 1, train::MessageKind::kActivation, 0, buf, 32, nullptr).ok());
  CHECK(!t.Send(0, 1, train::MessageKind::kActivation, 0, buf, 32, nullptr).ok());  // twice
  const Status wrong = t.Recv(1, 0, train::MessageKind::kActivation, 0, buf, 64, nullptr);
  CHECK(!wrong.ok());
  CHECK(wrong.message().find("expected 64 floats") != std::string::npos);
  Status waited;
  std::thread waiter([&] { waited = t.Recv(1, 0, train::MessageKind::kActivation, 7, buf, 64, nullptr); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  t.Abort();
  waiter.join();
  CHECK(waited.code() == StatusCode::kCancelled);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  cudaFree(buf);
}

}  // namespace lms::test
