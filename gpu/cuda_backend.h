// The CUDA backend: core's Backend on an NVIDIA GPU (device memory, one stream, cuBLAS for the
// larger matrix products, one kernel file per op under gpu/ops). No CUDA header leaks out of
// this interface, so app can include it in plain C++.
#pragma once

#include <memory>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/registry.h"

namespace lms::gpu {

// The CUDA devices the driver reports; empty when there is no driver or no device.
std::vector<DeviceInfo> ListCudaDevices();
struct CudaBackendOptions {
  // Decode-sized batches (up to kGraphMaxTokens tokens) are captured into a CUDA graph and
  // replayed (updated in place when only pointers or sizes changed), which saves the launch
  // cost of ~17 kernels per layer. Off by default until it has run on a GPU; the registry's
  // "cuda" device turns it on with LMS_CUDA_GRAPHS=1.
  bool graphs = false;
};
inline constexpr int kGraphMaxTokens = 64;

// A backend on device `index`. NotFound when there is no such device (or no driver).
Result<std::unique_ptr<Backend>> MakeCudaBackend(int index, const CudaBackendOptions& options = {});
// Adds the "cuda" provider to core's backend registry (call once at start-up).
void RegisterCudaBackend();

// Peak memory bandwidth in bytes/s from the device's memory clock and bus width (0 when the
// driver does not say).
double PeakMemoryBandwidth(int index);

}  // namespace lms::gpu
