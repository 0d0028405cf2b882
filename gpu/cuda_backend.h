// The CUDA backend: core's Backend on an NVIDIA GPU (device memory, one stream, cuBLAS for the
// larger matrix products, one kernel file per op under gpu/ops). No CUDA header leaks out of
// this interface, so app can include it in plain C++.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend/backend.h"
#include "core/backend/registry.h"
#include "gpu/op_time_total.h"

namespace lms::gpu {

// The CUDA devices the driver reports; empty when there is no driver or no device.
std::vector<DeviceInfo> ListCudaDevices();
// What the CUDA-graph path did (see gpu/step_graphs.h). One backend's steps run on one thread.
struct CudaGraphStats {
  int64_t captures = 0;           // steps captured into a new graph
  int64_t replays = 0;            // steps that launched a graph recorded earlier
  int64_t launches_replayed = 0;  // kernel launches those replays stood in for
  int64_t direct = 0;             // recorded steps run without a graph (first seen, or not capturable)
};

struct CudaBackendOptions {
  // Decode-sized batches (up to kGraphMaxTokens tokens) are recorded, and a step whose every
  // launch has the same arguments as a step before it (same batch size, same buffers; the token
  // ids, positions and block tables change only in device memory) launches the CUDA graph
  // captured then: one launch instead of ~15 a layer. Off by default until it is measured on a
  // GPU; the registry's "cuda" device turns it on with LMS_CUDA_GRAPHS=1.
  bool graphs = false;
  CudaGraphStats* graph_stats = nullptr;  // counted into when set; must outlive the backend
  // Prefill runs (kPrefillMinRun or more consecutive positions of one sequence) take the tiled
  // tensor-core attention (gpu/ops/attention_prefill.cu) instead of the paged kernel, which keeps
  // the rest. Its f16 rounding of queries, keys and probabilities makes a token's result depend
  // on which kernel took it, so it is off by default until measured on a GPU; the registry's
  // "cuda" device turns it on with LMS_CUDA_PREFILL=tiled.
  bool tiled_prefill = false;
  // The decode-step kernels are launched as programmatic dependent launches (gpu/ops/launch.cuh):
  // each may start while the kernel before it finishes, and the mat-vec kernels read their first
  // weights then. Compute capability 9.0 and later only, and process-wide once a backend has
  // turned it on. Off by default until it is measured on a GPU; the registry's "cuda" device
  // turns it on with LMS_CUDA_PDL=1.
  bool dependent_launches = false;
};
inline constexpr int kGraphMaxTokens = 64;

// A backend on device `index`. NotFound when there is no such device (or no driver).
Result<std::unique_ptr<Backend>> MakeCudaBackend(int index, const CudaBackendOptions& options = {});
// Adds the "cuda" provider to core's backend registry (call once at start-up).
void RegisterCudaBackend();

// GPU time per op of a CUDA backend made while LMS_CUDA_OP_TIMES=1 was set (else empty): waits
// for the stream, returns the totals since the last reset, and starts again when `reset`.
// Steps recorded for CUDA graphs (LMS_CUDA_GRAPHS=1) are not timed at all.
Result<std::vector<OpTimeTotal>> CudaOpTimes(Backend& backend, bool reset);

// Peak memory bandwidth in bytes/s from the device's memory clock and bus width (0 when the
// driver does not say).
double PeakMemoryBandwidth(int index);

}  // namespace lms::gpu
