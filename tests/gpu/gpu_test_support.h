// Helpers of the GPU tests: a CPU and a CUDA backend side by side, the same data on both, and
// the normalized mean squared error llama.cpp's test-backend-ops compares them with.
#pragma once

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gpu/cuda_backend.h"
#include "core/backend/backend.h"

namespace lms::test {

// The op tests' tolerances (NMSE against the CPU backend; see test_backend_ops.cpp): the same
// float formula (element-wise ops, rotations), exp and sum order (attention), and products, where
// the CPU rounds activations to 8 bits for quantized weights and the GPU to f16 on its cuBLAS path.
inline constexpr double kElementwiseTol = 1e-7;
inline constexpr double kAttentionTol = 1e-5;
inline constexpr double kMatmulTol = 5e-4;

// Every weight type the CUDA kernels read.
inline constexpr TensorType kGpuWeightTypes[] = {TensorType::kF32,  TensorType::kF16,  TensorType::kBF16,
                                                 TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_1,
                                                 TensorType::kQ4_K, TensorType::kQ6_K};

// Why the GPU tests cannot run here (no CUDA device), or nullopt when they can.
std::optional<std::string> NoGpuReason();

// sum((a - b)^2) / sum(a^2); a is the reference.
double Nmse(const std::vector<float>& a, const std::vector<float>& b);

std::vector<float> RandomFloats(size_t n, uint64_t seed, float scale = 1.0f);

// Host rows of `type` holding `values` (rows x cols) quantized with core's QuantizeRow.
std::vector<uint8_t> Encode(TensorType type, const std::vector<float>& values, int64_t rows, int64_t cols);

// A batch of sequences: sequence s has new_tokens[s] tokens at positions [start[s], start[s] +
// new_tokens[s]), its blocks taken from tables[s]; token ids made up below `vocab`.
BatchLayout MakeBatch(const std::vector<int>& start, const std::vector<int>& new_tokens,
                      const std::vector<std::vector<int32_t>>& tables, int block_size, int vocab);

// A tensor with the same contents on two backends.
struct Twin {
  TensorView cpu, gpu;
};

class BackendPair {
 public:
  explicit BackendPair(const gpu::CudaBackendOptions& options = {});  // REQUIRES: NoGpuReason() is nullopt
  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }

  // An activation-like tensor (Allocate + CopyFromHost) on both.
  Twin Tensor(TensorType type, int64_t rows, int64_t cols, const void* host);
  Twin F32(int64_t rows, int64_t cols, const std::vector<float>& values) {
    return Tensor(TensorType::kF32, rows, cols, values.data());
  }
  // A weight (AdoptWeight) on both; the host bytes are kept alive by the pair.
  Twin Weight(TensorType type, int64_t rows, int64_t cols, std::vector<uint8_t> bytes);

  std::vector<float> ReadCpu(const TensorView& t);
  std::vector<float> ReadGpu(const TensorView& t);
  // Raw bytes (caches in f16).
  std::vector<uint8_t> ReadBytes(Backend& b, const TensorView& t);

 private:
  std::unique_ptr<Backend> cpu_, gpu_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> host_weights_;
};

}  // namespace lms::test
