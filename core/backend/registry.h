// Where backends other than the CPU one make themselves known. core cannot depend on gpu/, so
// the composition root (app) calls gpu's register function, which adds a factory here; commands
// then create a backend from a device string ("cpu", "cuda", "cuda:1") without knowing CUDA.
//
// Thread-safety: register before any lookup (at start-up); lookups may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend/backend.h"

namespace lms {

struct DeviceInfo {
  std::string kind;          // "cpu", "cuda"
  int index = 0;             // device ordinal within its kind
  std::string name;          // "NVIDIA H100 80GB HBM3"
  uint64_t memory_bytes = 0; // total device memory (0: not reported)
  int cc_major = 0, cc_minor = 0;  // compute capability (CUDA)
};

struct DeviceSpec {
  std::string kind = "cpu";
  int index = 0;
};

// Parses "cpu", "cuda" (= cuda:0) or "cuda:N". InvalidArgument names what was wrong.
Result<DeviceSpec> ParseDeviceSpec(const std::string& text);

// Several devices of one kind, as training takes them: "cuda" (every device of the kind: indices
// empty), "cuda:N" or "cuda:0,1". InvalidArgument for a malformed list or an index given twice.
struct DeviceList {
  std::string kind;
  std::vector<int> indices;  // in the order given; empty = all
};
Result<DeviceList> ParseDeviceList(const std::string& text);

struct BackendProvider {
  std::string kind;  // the device kind it serves
  std::function<std::vector<DeviceInfo>()> list_devices;
  std::function<Result<std::unique_ptr<Backend>>(int index)> create;
};

void RegisterBackendProvider(BackendProvider provider);
// Kinds registered besides "cpu".
std::vector<std::string> RegisteredDeviceKinds();

// The CPU first, then every registered provider's devices.
std::vector<DeviceInfo> ListDevices();

// A backend for `spec`: the CPU backend with `cpu_options`, or a registered provider's.
// Unsupported when the kind was not built into this program (names the build option); NotFound
// when the device index does not exist.
Result<std::unique_ptr<Backend>> MakeBackend(const DeviceSpec& spec, const CpuBackendOptions& cpu_options);

}  // namespace lms
