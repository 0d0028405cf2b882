// The emulation's two orders (cuda_host.h, HostOrder) show a race: a kernel whose threads read
// shared memory another thread writes without a barrier between, or whose blocks read what
// another block writes in the same launch, gives different results in the two orders; the same
// kernel with its barrier gives the right result in both. Exit status 0 when that holds.
#include <cstdio>
#include <cstring>
#include <vector>

#include <cuda_runtime.h>

namespace {

// Each thread writes its slot of shared memory, then reads its neighbour's: with `barrier` the
// neighbour has written it (on a GPU and in either order), without it only in one order.
__global__ void Neighbour(float* out, bool barrier) {
  auto* s = reinterpret_cast<float*>(g_host_smem);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  s[t] = static_cast<float>(t + 1);
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = s[(t + 1) % n];
}

// Block b reads the flag block b - 1 writes in the same launch: no launch orders them.
__global__ void AfterBlock(float* flags, float* out) {
  const int b = static_cast<int>(blockIdx.x);
  if (threadIdx.x == 0) {
    flags[b] = 1.0f;
    out[b] = b > 0 ? flags[b - 1] : 1.0f;
  }
}

int g_failures = 0;

void Expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++g_failures;
}

constexpr int kThreads = 64, kBlocks = 3;

std::vector<float> RunNeighbour(HostOrder order, bool barrier) {
  g_host.order = order;
  float* out;
  cudaMalloc(&out, kThreads * kBlocks * sizeof(float));
  HostLaunch(HostLaunchConfig(dim3(kBlocks), dim3(kThreads), kThreads * sizeof(float)), Neighbour, out, barrier);
  std::vector<float> host(kThreads * kBlocks);
  cudaMemcpy(host.data(), out, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(out);
  return host;
}

std::vector<float> RunAfterBlock(HostOrder order) {
  g_host.order = order;
  float *flags, *out;
  cudaMalloc(&flags, kBlocks * sizeof(float));
  cudaMalloc(&out, kBlocks * sizeof(float));
  cudaMemset(flags, 0, kBlocks * sizeof(float));
  HostLaunch(HostLaunchConfig(dim3(kBlocks), dim3(32)), AfterBlock, flags, out);
  std::vector<float> host(kBlocks);
  cudaMemcpy(host.data(), out, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(flags);
  cudaFree(out);
  return host;
}

bool Same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool NeighboursRight(const std::vector<float>& v) {
  for (int i = 0; i < kThreads * kBlocks; ++i) {
    if (v[static_cast<size_t>(i)] != static_cast<float>((i % kThreads + 1) % kThreads + 1)) return false;
  }
  return true;
}

}  // namespace

int main() {
  const HostOrder from_env = g_host.order;
  const auto fwd = RunNeighbour(HostOrder::kForward, false), rev = RunNeighbour(HostOrder::kReverse, false);
  Expect(!Same(fwd, rev), "threads that read a neighbour's shared memory without a barrier read differently in the two orders");
  Expect(!NeighboursRight(fwd) || !NeighboursRight(rev), "and wrongly in at least one of them");
  Expect(NeighboursRight(RunNeighbour(HostOrder::kForward, true)) && NeighboursRight(RunNeighbour(HostOrder::kReverse, true)),
         "with __syncthreads between the write and the read, both orders read right");
  Expect(!Same(RunAfterBlock(HostOrder::kForward), RunAfterBlock(HostOrder::kReverse)),
         "a block that reads what another block of the launch writes reads differently in the two orders");
  g_host.order = from_env;
  if (g_failures > 0) std::printf("%d of the thread-order cases failed\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
