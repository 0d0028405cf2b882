// The backend registry: device strings, the CPU always listed, CUDA refused plainly when it was
// not built in; and a registered provider is found by its kind.
#include <catch2/catch.hpp>

#include "core/backend/registry.h"

namespace lms {

TEST_CASE("registry: device strings parse or are refused naming the problem", "[backend][registry]") {
  auto cpu = ParseDeviceSpec("cpu");
  REQUIRE(cpu.ok());
  CHECK(cpu->kind == "cpu");
  auto c1 = ParseDeviceSpec("cuda:1");
  REQUIRE(c1.ok());
  CHECK(c1->kind == "cuda");
  CHECK(c1->index == 1);
  auto c = ParseDeviceSpec("cuda");
  REQUIRE(c.ok());
  CHECK(c->index == 0);
  for (const char* bad : {"cuda:", "cuda:x", "cuda:-1", "cuda:1x", ":0", "cpu:2"}) {
    CAPTURE(bad);
    auto r = ParseDeviceSpec(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(bad) != std::string::npos);
  }
}

TEST_CASE("registry: the CPU is always there, unknown kinds are refused", "[backend][registry]") {
  const auto devices = ListDevices();
  REQUIRE_FALSE(devices.empty());
  CHECK(devices[0].kind == "cpu");
  auto b = MakeBackend({"cpu", 0}, CpuBackendOptions{1});
  REQUIRE(b.ok());
  CHECK((*b)->Name().find("cpu") == 0);
  auto tpu = MakeBackend({"tpu", 0}, {});
  REQUIRE_FALSE(tpu.ok());
  CHECK(tpu.status().message().find("tpu") != std::string::npos);
}

TEST_CASE("registry: a registered provider serves its kind", "[backend][registry]") {
  const auto before = RegisteredDeviceKinds();
  BackendProvider p;
  p.kind = "test-cpu-twin";
  p.list_devices = [] {
    DeviceInfo d;
    d.kind = "test-cpu-twin";
    d.name = "a CPU backend under another name";
    return std::vector<DeviceInfo>{d};
  };
  p.create = [](int index) -> Result<std::unique_ptr<Backend>> {
    if (index != 0) return Status::NotFound("no such twin");
    return MakeCpuBackend({1});
  };
  RegisterBackendProvider(p);
  auto b = MakeBackend({"test-cpu-twin", 0}, {});
  REQUIRE(b.ok());
  CHECK_FALSE(MakeBackend({"test-cpu-twin", 3}, {}).ok());
  bool listed = false;
  for (const auto& d : ListDevices()) listed |= d.kind == "test-cpu-twin";
  CHECK(listed);
}

TEST_CASE("registry: device lists name a kind and, in order, its devices", "[backend][registry]") {
  auto all = ParseDeviceList("cuda");
  REQUIRE(all.ok());
  CHECK(all->kind == "cuda");
  CHECK(all->indices.empty());
  auto two = ParseDeviceList("cuda:1,0");
  REQUIRE(two.ok());
  CHECK(two->indices == std::vector<int>{1, 0});
  auto one = ParseDeviceList("cuda:3");
  REQUIRE(one.ok());
  CHECK(one->indices == std::vector<int>{3});
  for (const char* bad : {"", ":0", "cuda:", "cuda:x", "cuda:-1", "cuda:1,", "cuda:,1", "cuda:1,,2", "cuda:1x", "cuda:0,0"}) {
    CAPTURE(bad);
    auto r = ParseDeviceList(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
  }
}

}  // namespace lms
