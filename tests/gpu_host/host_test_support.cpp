// NoGpuReason for the GPU tests built on the host emulation (see CMakeLists.txt): the emulated
// devices of host_runtime.cpp stand in for GPUs.
#include <cuda_runtime.h>

#include "tests/gpu/gpu_test_support.h"

namespace lms::test {

std::optional<std::string> NoGpuReason() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) return "no emulated CUDA device (LMS_HOST_GPUS=0)";
  return std::nullopt;
}

}  // namespace lms::test
