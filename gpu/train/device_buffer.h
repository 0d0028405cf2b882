// An owned cudaMalloc'd buffer of T on the device current at allocation, freed on destruction.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "gpu/cuda_check.h"

namespace lms::gpu::train {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { Reset(); }

  // n zeroed elements; OOM comes back as ResourceExhausted naming `what`.
  Status Allocate(int64_t n, const char* what) {
    Reset();
    if (n <= 0) return Status::Ok();
    LMS_RETURN_IF_ERROR(CudaStatus(cudaMalloc(reinterpret_cast<void**>(&p_), static_cast<size_t>(n) * sizeof(T)), what));
    n_ = n;
    return CudaStatus(cudaMemset(p_, 0, static_cast<size_t>(n) * sizeof(T)), what);
  }
  void Reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* get() const { return p_; }
  int64_t size() const { return n_; }
  size_t bytes() const { return static_cast<size_t>(n_) * sizeof(T); }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace lms::gpu::train
