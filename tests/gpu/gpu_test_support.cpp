#include "tests/gpu/gpu_test_support.h"

#include <catch2/catch.hpp>

#include "gpu/cuda_backend.h"

namespace lms::test {

std::optional<std::string> NoGpuReason() {
  if (gpu::ListCudaDevices().empty()) return "no CUDA device (or no NVIDIA driver) on this machine";
  return std::nullopt;
}

BatchLayout MakeBatch(const std::vector<int>& start, const std::vector<int>& new_tokens,
                      const std::vector<std::vector<int32_t>>& tables, int block_size, int vocab) {
  BatchLayout b;
  b.block_tables = tables;
  int t = 0;
  for (size_t s = 0; s < start.size(); ++s) {
    for (int i = 0; i < new_tokens[s]; ++i, ++t) {
      const int pos = start[s] + i;
      b.tokens.push_back((t * 7919 + 13) % vocab);
      b.positions.push_back(pos);
      b.seq_of_token.push_back(static_cast<int32_t>(s));
      b.slots.push_back(tables[s][pos / block_size] * block_size + pos % block_size);
    }
  }
  return b;
}

BackendPair::BackendPair(const gpu::CudaBackendOptions& options) {
  cpu_ = MakeCpuBackend({2});
  auto g = gpu::MakeCudaBackend(0, options);
  REQUIRE(g.ok());
  gpu_ = std::move(g).value();
}

Twin BackendPair::Tensor(TensorType type, int64_t rows, int64_t cols, const void* host) {
  Twin t;
  for (auto [b, dst] : {std::pair{cpu_.get(), &t.cpu}, std::pair{gpu_.get(), &t.gpu}}) {
    auto a = b->Allocate(type, rows, cols);
    REQUIRE(a.ok());
    *dst = *a;
    if (host) REQUIRE(b->CopyFromHost(host, *dst, dst->row_stride * rows).ok());
  }
  return t;
}

Twin BackendPair::Weight(TensorType type, int64_t rows, int64_t cols, std::vector<uint8_t> bytes) {
  host_weights_.push_back(std::make_unique<std::vector<uint8_t>>(std::move(bytes)));
  TensorView host;
  host.data = host_weights_.back()->data();
  host.type = type;
  host.rows = rows;
  host.cols = cols;
  host.row_stride = RowBytes(type, cols);
  Twin t;
  auto c = cpu_->AdoptWeight(host);
  REQUIRE(c.ok());
  auto g = gpu_->AdoptWeight(host);
  REQUIRE(g.ok());
  t.cpu = *c;
  t.gpu = *g;
  return t;
}

std::vector<float> BackendPair::ReadCpu(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.rows * t.cols));
  REQUIRE(cpu_->CopyToHost(t, v.data(), v.size() * sizeof(float)).ok());
  return v;
}

std::vector<float> BackendPair::ReadGpu(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.rows * t.cols));
  REQUIRE(gpu_->CopyToHost(t, v.data(), v.size() * sizeof(float)).ok());
  return v;
}

std::vector<uint8_t> BackendPair::ReadBytes(Backend& b, const TensorView& t) {
  std::vector<uint8_t> v(t.row_stride * t.rows);
  REQUIRE(b.CopyToHost(t, v.data(), v.size()).ok());
  return v;
}

}  // namespace lms::test
