#include "gpu/device_arena.h"

#include "gpu/cuda_check.h"

namespace lms::gpu {

DeviceArena::~DeviceArena() {
  for (auto& c : chunks_) cudaFree(c.base);
}

Result<void*> DeviceArena::Allocate(size_t bytes) {
  const size_t need = (bytes + 255) / 256 * 256;
  for (auto& c : chunks_) {
    if (c.size - c.used >= need) {
      void* p = static_cast<uint8_t*>(c.base) + c.used;
      c.used += need;
      LMS_CUDA_RETURN_IF_ERROR(cudaMemset(p, 0, bytes));
      return p;
    }
  }
  Chunk c;
  c.size = need > kChunkBytes ? need : kChunkBytes;
  cudaError_t e = cudaMalloc(&c.base, c.size);
  if (e != cudaSuccess && c.size > need) {  // the last few MiB of the card: exactly what is asked
    cudaGetLastError();
    c.size = need;
    e = cudaMalloc(&c.base, c.size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    return Status::ResourceExhausted(fmt::format("out of GPU memory allocating {} MiB ({} MiB held already)",
                                                 need >> 20, reserved_ >> 20));
  }
  reserved_ += c.size;
  c.used = need;
  chunks_.push_back(c);
  LMS_CUDA_RETURN_IF_ERROR(cudaMemset(c.base, 0, bytes));
  return c.base;
}

DeviceScratch::~DeviceScratch() { cudaFree(data_); }

Result<void*> DeviceScratch::Get(size_t bytes) {
  if (bytes <= size_) return data_;
  cudaFree(data_);
  data_ = nullptr;
  size_ = 0;
  const size_t want = bytes + bytes / 4;  // some headroom against regrowing every step
  LMS_CUDA_RETURN_IF_ERROR(cudaMalloc(&data_, want));
  size_ = want;
  return data_;
}

}  // namespace lms::gpu
