#include "core/backend/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <thread>

namespace lms {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex m;
  return m;
}
std::vector<BackendProvider>& Providers() {
  static std::vector<BackendProvider> p;
  return p;
}

}  // namespace

Result<DeviceSpec> ParseDeviceSpec(const std::string& text) {
  DeviceSpec spec;
  const size_t colon = text.find(':');
  spec.kind = text.substr(0, colon);
  if (spec.kind.empty()) return Status::InvalidArgument(fmt::format("device '{}' has no kind (cpu, cuda[:N])", text));
  if (colon != std::string::npos) {
    const std::string idx = text.substr(colon + 1);
    const auto [end, ec] = std::from_chars(idx.data(), idx.data() + idx.size(), spec.index);
    if (idx.empty() || ec != std::errc() || end != idx.data() + idx.size() || spec.index < 0) {
      return Status::InvalidArgument(fmt::format("device '{}': '{}' is not a device number", text, idx));
    }
  }
  if (spec.kind == "cpu" && spec.index != 0) {
    return Status::InvalidArgument(fmt::format("device '{}': there is one cpu device (cpu or cpu:0)", text));
  }
  return spec;
}

Result<DeviceList> ParseDeviceList(const std::string& text) {
  DeviceList list;
  const size_t colon = text.find(':');
  list.kind = text.substr(0, colon);
  if (list.kind.empty()) return Status::InvalidArgument(fmt::format("device '{}' has no kind (cpu, cuda[:N[,M…]])", text));
  if (colon == std::string::npos) return list;
  const std::string rest = text.substr(colon + 1);
  size_t pos = 0;
  while (true) {
    const size_t comma = std::min(rest.find(',', pos), rest.size());
    int index = -1;
    const auto [end, ec] = std::from_chars(rest.data() + pos, rest.data() + comma, index);
    if (comma == pos || ec != std::errc() || end != rest.data() + comma || index < 0) {
      return Status::InvalidArgument(fmt::format("device '{}': expected {}, {}:N or {}:N,M,…", text, list.kind, list.kind,
                                                 list.kind));
    }
    if (std::find(list.indices.begin(), list.indices.end(), index) != list.indices.end()) {
      return Status::InvalidArgument(fmt::format("device '{}' names {} {} twice", text, list.kind, index));
    }
    list.indices.push_back(index);
    if (comma == rest.size()) break;
    pos = comma + 1;
  }
  return list;
}

void RegisterBackendProvider(BackendProvider provider) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  for (auto& p : Providers()) {
    if (p.kind == provider.kind) {
      p = std::move(provider);
      return;
    }
  }
  Providers().push_back(std::move(provider));
}

std::vector<std::string> RegisteredDeviceKinds() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::vector<std::string> kinds;
  for (const auto& p : Providers()) kinds.push_back(p.kind);
  return kinds;
}

std::vector<DeviceInfo> ListDevices() {
  std::vector<DeviceInfo> out;
  DeviceInfo cpu;
  cpu.kind = "cpu";
  cpu.name = fmt::format("CPU ({} hardware threads)", std::thread::hardware_concurrency());
  out.push_back(cpu);
  std::vector<BackendProvider> providers;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    providers = Providers();
  }
  for (const auto& p : providers) {
    for (auto& d : p.list_devices()) out.push_back(std::move(d));
  }
  return out;
}

Result<std::unique_ptr<Backend>> MakeBackend(const DeviceSpec& spec, const CpuBackendOptions& cpu_options) {
  if (spec.kind == "cpu") return MakeCpuBackend(cpu_options);
  BackendProvider provider;
  {
    std::lock_guard<std::mutex> lock(RegistryMutex());
    for (const auto& p : Providers()) {
      if (p.kind == spec.kind) provider = p;
    }
  }
  if (!provider.create) {
    if (spec.kind == "cuda") {
      return Status::Unsupported("this lmstation was built without CUDA (configure with -DLMS_CUDA=ON)");
    }
    return Status::InvalidArgument(fmt::format("unknown device kind '{}' (cpu, cuda[:N])", spec.kind));
  }
  return provider.create(spec.index);
}

}  // namespace lms
