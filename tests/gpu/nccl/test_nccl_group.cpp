// The NCCL transport between local GPUs: every ordered pair of ranks (a rank to itself too)
// moves a buffer of floats exactly, including sizes that are not a multiple of anything; bad
// arguments are refused with a message. Skips where no GPU is present.
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <chrono>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "core/net/blob_rendezvous.h"
#include "gpu/comm/nccl_group.h"
#include "gpu/cuda_backend.h"
#include "tests/test_support.h"

namespace lms::test {
namespace {

struct DeviceFloats {
  int device = 0;
  float* ptr = nullptr;
  size_t n = 0;
  DeviceFloats(int d, size_t count) : device(d), n(count) {
    REQUIRE(cudaSetDevice(d) == cudaSuccess);
    REQUIRE(cudaMalloc(&ptr, n * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaMemset(ptr, 0, n * sizeof(float)) == cudaSuccess);
    // cudaMemset is asynchronous, on the legacy stream, which NCCL's non-blocking streams do not
    // wait for.
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  }
  ~DeviceFloats() {
    cudaSetDevice(device);
    cudaFree(ptr);
  }
  void Put(const std::vector<float>& v) {
    REQUIRE(cudaSetDevice(device) == cudaSuccess);
    REQUIRE(cudaMemcpy(ptr, v.data(), n * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    // From pageable memory cudaMemcpy returns once the data is staged, maybe before it lands.
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  }
  std::vector<float> Get() const {
    std::vector<float> v(n);
    REQUIRE(cudaSetDevice(device) == cudaSuccess);
    REQUIRE(cudaMemcpy(v.data(), ptr, n * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

std::vector<int> AllDevices() {
  std::vector<int> d;
  for (const auto& info : gpu::ListCudaDevices()) d.push_back(info.index);
  return d;
}

}  // namespace

TEST_CASE("nccl: every pair of local GPUs (and each GPU to itself) moves buffers exactly", "[gpu][nccl]") {
  const std::vector<int> devices = AllDevices();
  if (devices.empty()) LMS_SKIP("no CUDA device (or no NVIDIA driver) on this machine");
  auto group = gpu::NcclGroup::Create(devices);
  REQUIRE(group.ok());
  const int R = (*group)->size();
  CHECK(R == static_cast<int>(devices.size()));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (size_t n : {size_t{1}, size_t{1000}, size_t{128 * 576 + 3}}) {
    for (int from = 0; from < R; ++from) {
      for (int to = 0; to < R; ++to) {
        CAPTURE(n, from, to);
        std::vector<float> want(n);
        for (float& x : want) x = u(rng);
        DeviceFloats src(devices[from], n), dst(devices[to], n);
        src.Put(want);
        // One thread drives both ranks here, so the send and the receive go in one group.
        REQUIRE((*group)->GroupStart().ok());
        REQUIRE((*group)->Send(from, to, src.ptr, n).ok());
        REQUIRE((*group)->Recv(to, from, dst.ptr, n).ok());
        REQUIRE((*group)->GroupEnd().ok());
        REQUIRE((*group)->Synchronize(from).ok());
        REQUIRE((*group)->Synchronize(to).ok());
        CHECK(dst.Get() == want);
      }
    }
  }
  CHECK(!(*group)->Send(0, R, nullptr, 1).ok());  // no such rank
  CHECK(!(*group)->Recv(-1, 0, nullptr, 1).ok());
}

TEST_CASE("nccl: a group refuses a GPU twice and GPUs that are not there", "[gpu][nccl]") {
  const std::vector<int> devices = AllDevices();
  if (devices.empty()) LMS_SKIP("no CUDA device (or no NVIDIA driver) on this machine");
  auto twice = gpu::NcclGroup::Create({devices[0], devices[0]});
  REQUIRE(!twice.ok());
  CHECK(twice.status().message().find("given twice") != std::string::npos);
  CHECK(!gpu::NcclGroup::Create({static_cast<int>(devices.size()) + 3}).ok());
  CHECK(!gpu::NcclGroup::Create({}).ok());
}

TEST_CASE("nccl: a rank joins by a unique id fetched over TCP and sends to itself", "[gpu][nccl]") {
  const std::vector<int> devices = AllDevices();
  if (devices.empty()) LMS_SKIP("no CUDA device (or no NVIDIA driver) on this machine");
  // Rank 0's process makes the id and serves it; the joining process (here a thread) fetches it.
  auto id = gpu::NcclGroup::NewUniqueId();
  REQUIRE(id.ok());
  auto server = net::BlobServer::Listen("127.0.0.1", 0);
  REQUIRE(server.ok());
  Status served;
  std::thread root([&] { served = server->Serve(*id, 1, 30.0); });
  auto fetched = net::FetchBlob("127.0.0.1", server->port(), 30.0);
  root.join();
  REQUIRE(served.ok());
  REQUIRE(fetched.ok());
  REQUIRE(*fetched == *id);
  auto g = gpu::NcclGroup::JoinRank(*fetched, 1, 0, devices[0]);
  REQUIRE(g.ok());
  CHECK((*g)->size() == 1);
  CHECK((*g)->local_ranks() == std::vector<int>{0});
  const size_t n = 4099;
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = 0.5f * static_cast<float>(i) - 7.0f;
  DeviceFloats src(devices[0], n), dst(devices[0], n);
  src.Put(want);
  REQUIRE((*g)->GroupStart().ok());
  REQUIRE((*g)->Send(0, 0, src.ptr, n).ok());
  REQUIRE((*g)->Recv(0, 0, dst.ptr, n).ok());
  REQUIRE((*g)->GroupEnd().ok());
  REQUIRE((*g)->Synchronize(0).ok());
  CHECK(dst.Get() == want);
  CHECK(!gpu::NcclGroup::JoinRank({1, 2, 3}, 1, 0, devices[0]).ok());  // not an id
  CHECK(!gpu::NcclGroup::JoinRank(*id, 2, 2, devices[0]).ok());        // rank out of range
}

TEST_CASE("nccl: an abort from another thread ends a receive whose send never comes", "[gpu][nccl]") {
  const std::vector<int> devices = AllDevices();
  if (devices.empty()) LMS_SKIP("no CUDA device (or no NVIDIA driver) on this machine");
  auto group = gpu::NcclGroup::Create({devices[0]});
  REQUIRE(group.ok());
  auto dst = std::make_unique<DeviceFloats>(devices[0], 1000);
  // Rank 0 waits for a message from itself that is never sent: only the abort can end the wait,
  // which comes from another thread while this one waits (the reason the communicators are
  // non-blocking).
  // Last in this file: should the abort fail to end the wait, the stuck thread is left behind
  // with the group and buffer it uses.
  auto received = std::make_shared<Status>();
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread stage([group = group->get(), ptr = dst->ptr, n = dst->n, received, done] {
    *received = group->Recv(0, 0, ptr, n);
    // Returns once the abort stops the receive; what it reports then is NCCL's and CUDA's affair.
    (void)group->Synchronize(0);
    done->set_value();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  (*group)->Abort();
  if (finished.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    stage.detach();
    (void)group->release();
    (void)dst.release();
    FAIL("the receive still waits 30 s after the abort");
  }
  stage.join();
  CHECK((*group)->aborted());
  CHECK((received->ok() || received->code() == StatusCode::kCancelled));
  CHECK((*group)->Send(0, 0, dst->ptr, dst->n).code() == StatusCode::kCancelled);
}

}  // namespace lms::test
