// Device memory for one backend: large cudaMalloc chunks handed out front to back (256-byte
// aligned), all freed together when the backend goes. Tensors live as long as the backend
// (the Backend contract), so nothing is freed one by one.
#pragma once

#include <cstddef>
#include <vector>

#include "core/util/status.h"

namespace lms::gpu {

class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena();

  // `bytes` of zeroed device memory.
  Result<void*> Allocate(size_t bytes);
  size_t bytes_reserved() const { return reserved_; }

 private:
  struct Chunk {
    void* base = nullptr;
    size_t size = 0;
    size_t used = 0;
  };
  static constexpr size_t kChunkBytes = size_t{256} << 20;
  std::vector<Chunk> chunks_;
  size_t reserved_ = 0;
};

// A device buffer that grows on demand (scratch space, batch layouts).
class DeviceScratch {
 public:
  DeviceScratch() = default;
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  ~DeviceScratch();
  // At least `bytes` bytes; the contents are lost when it grows. REQUIRES: no kernel still
  // uses the old buffer (the caller synchronizes first).
  Result<void*> Get(size_t bytes);
  bool Fits(size_t bytes) const { return bytes <= size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lms::gpu
