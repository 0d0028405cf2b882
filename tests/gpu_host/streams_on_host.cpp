// The host runtime's stream model (cuda_host_runtime.h) against what CUDA documents: work of one
// stream runs in order; work of another stream, or a host read, sees it only after a wait that
// CUDA defines (an event, a synchronize, the legacy stream's ordering against blocking streams).
// Each case writes a buffer on one stream and reads it elsewhere, once without the wait, where the
// emulation must show the old contents (else a missing wait would pass here by luck), and once
// with it. Also: a kernel given another device's memory without peer access aborts, and NCCL's
// stand-in (nccl_host.cpp) moves data in both streams' order and aborts where GPUs would hang.
// Exit status 0 when every case gives what CUDA and NCCL allow.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime.h>
#include <nccl.h>

namespace {

__global__ void Fill(float* out, int n, float value) {
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x)) out[i] = value;
}

void LaunchFill(float* out, int n, float value, cudaStream_t s) {
  HostLaunch(HostLaunchConfig(dim3(1), dim3(64), 0, s), Fill, out, n, value);
}

int g_failures = 0;

void Expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++g_failures;
}

bool AllEqual(const float* p, int n, float value) {
  for (int i = 0; i < n; ++i) {
    if (p[i] != value) return false;
  }
  return true;
}
// Freshly allocated device memory reads as 0xFF bytes.
bool Untouched(const float* p, int n) {
  for (int i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &p[i], 4);
    if (u != 0xffffffffu) return false;
  }
  return true;
}

constexpr int kN = 1000;

void CrossStream() {
  cudaStream_t a, b;
  cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking);
  float *buf, *host;
  cudaMalloc(&buf, kN * sizeof(float));
  cudaMallocHost(&host, kN * sizeof(float));

  // b copies what a writes, without waiting for a: the copy must not see the write.
  LaunchFill(buf, kN, 1.0f, a);
  cudaMemcpyAsync(host, buf, kN * sizeof(float), cudaMemcpyDeviceToHost, b);
  cudaStreamSynchronize(b);
  Expect(Untouched(host, kN), "a copy on another stream, with no wait, does not see a kernel's write");
  cudaStreamSynchronize(a);

  // With an event recorded after the write and waited for by b, it does.
  cudaEvent_t done;
  cudaEventCreateWithFlags(&done, cudaEventDisableTiming);
  LaunchFill(buf, kN, 2.0f, a);
  cudaEventRecord(done, a);
  LaunchFill(buf, kN, 3.0f, a);  // after the record: b need not see it
  cudaStreamWaitEvent(b, done, 0);
  cudaMemcpyAsync(host, buf, kN * sizeof(float), cudaMemcpyDeviceToHost, b);
  cudaStreamSynchronize(b);
  Expect(AllEqual(host, kN, 2.0f), "a wait on an event sees the work before its record, not after");
  cudaStreamSynchronize(a);

  // The host reads pinned memory before the copy into it is waited for: the old contents.
  std::fill(host, host + kN, 0.0f);
  cudaMemcpyAsync(host, buf, kN * sizeof(float), cudaMemcpyDeviceToHost, a);
  Expect(AllEqual(host, kN, 0.0f), "an asynchronous copy to the host is not there before a synchronize");
  cudaEventRecord(done, a);
  cudaEventSynchronize(done);
  Expect(AllEqual(host, kN, 3.0f), "it is there after the event behind it is synchronized");

  // A blocking cudaMemcpy runs on the legacy stream, which does not wait for non-blocking streams.
  std::vector<float> pageable(kN, 0.0f);
  LaunchFill(buf, kN, 4.0f, a);
  cudaMemcpy(pageable.data(), buf, kN * sizeof(float), cudaMemcpyDeviceToHost);
  Expect(AllEqual(pageable.data(), kN, 3.0f), "cudaMemcpy does not wait for a non-blocking stream");
  cudaDeviceSynchronize();
  cudaMemcpy(pageable.data(), buf, kN * sizeof(float), cudaMemcpyDeviceToHost);
  Expect(AllEqual(pageable.data(), kN, 4.0f), "after cudaDeviceSynchronize it sees the write");

  cudaEventDestroy(done);
  cudaFreeHost(host);
  cudaFree(buf);
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
}

void LegacyAndBlocking() {
  cudaStream_t blocking;
  cudaStreamCreate(&blocking);
  float* buf;
  cudaMalloc(&buf, kN * sizeof(float));
  std::vector<float> host(kN, 0.0f);
  // The legacy stream waits for a blocking stream's earlier work ...
  LaunchFill(buf, kN, 5.0f, blocking);
  cudaMemcpy(host.data(), buf, kN * sizeof(float), cudaMemcpyDeviceToHost);
  Expect(AllEqual(host.data(), kN, 5.0f), "cudaMemcpy waits for a blocking stream's kernel");
  std::fill(host.begin(), host.end(), 0.0f);
  cudaMemcpy(host.data(), buf, kN * sizeof(float), cudaMemcpyDefault);
  Expect(AllEqual(host.data(), kN, 5.0f), "cudaMemcpyDefault finds the direction (device to host) from the pointers");
  // ... and a blocking stream for the legacy stream's.
  LaunchFill(buf, kN, 6.0f, nullptr);
  cudaMemcpyAsync(host.data(), buf, kN * sizeof(float), cudaMemcpyDeviceToHost, blocking);
  cudaStreamSynchronize(blocking);
  Expect(AllEqual(host.data(), kN, 6.0f), "a blocking stream waits for the legacy stream's kernel");
  cudaFree(buf);
  cudaStreamDestroy(blocking);
}

void StagedAndTimed() {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  float* buf;
  cudaMalloc(&buf, kN * sizeof(float));
  std::vector<float> src(kN, 7.0f), out(kN, 0.0f);
  // A copy from pageable memory is staged at the call: changing the source after it is safe.
  cudaMemcpyAsync(buf, src.data(), kN * sizeof(float), cudaMemcpyHostToDevice, s);
  std::fill(src.begin(), src.end(), 8.0f);
  cudaMemcpyAsync(out.data(), buf, kN * sizeof(float), cudaMemcpyDeviceToHost, s);
  cudaStreamSynchronize(s);
  Expect(AllEqual(out.data(), kN, 7.0f), "a copy from pageable memory takes the data as it was at the call");
  // A blocking copy from pageable memory returns once staged: a non-blocking stream may miss it.
  cudaMemcpy(buf, src.data(), kN * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpyAsync(out.data(), buf, kN * sizeof(float), cudaMemcpyDeviceToHost, s);
  cudaStreamSynchronize(s);
  Expect(AllEqual(out.data(), kN, 7.0f), "cudaMemcpy from pageable memory is not waited for by another stream");
  cudaDeviceSynchronize();

  // Elapsed time needs both events reached.
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  cudaEventRecord(t0, s);
  LaunchFill(buf, kN, 9.0f, s);
  cudaEventRecord(t1, s);
  float ms = -1.0f;
  Expect(cudaEventElapsedTime(&ms, t0, t1) == cudaErrorNotReady, "elapsed time before the events are reached");
  cudaEventSynchronize(t1);
  Expect(cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess && ms >= 0.0f, "elapsed time once they are");

  // Stream-ordered free: the memory stays allocated until the stream reaches the free.
  const size_t before = HostDeviceBytesInUse();
  cudaFreeAsync(buf, s);
  Expect(HostDeviceBytesInUse() == before, "cudaFreeAsync frees nothing before the stream gets there");
  cudaStreamSynchronize(s);
  Expect(HostDeviceBytesInUse() == before - kN * sizeof(float), "and frees the buffer when it does");
  cudaEventDestroy(t0);
  cudaEventDestroy(t1);
  cudaStreamDestroy(s);
}

// Whether `body`, run in a child process, is killed by an abort.
template <class F>
bool Aborts(F body) {
  std::fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

void PeerMemory() {
  float* on0;
  cudaSetDevice(0);
  cudaMalloc(&on0, kN * sizeof(float));
  cudaSetDevice(1);
  Expect(Aborts([on0] { LaunchFill(on0, kN, 1.0f, nullptr); }),
         "a kernel on device 1 given device 0's memory without peer access aborts");
  cudaDeviceEnablePeerAccess(0, 0);
  Expect(!Aborts([on0] {
    LaunchFill(on0, kN, 1.0f, nullptr);
    cudaDeviceSynchronize();
  }), "with peer access enabled it runs");
  cudaSetDevice(0);
  cudaFree(on0);
}

// NCCL (nccl_host.cpp): a send meets its receive in stream order; a send and receive of one
// stream outside a group, or two ranks that both send first outside a group, hang on GPUs and abort
// here.
void Nccl() {
  ncclComm_t comms[2];
  const int devices[2] = {0, 1};
  Expect(ncclCommInitAll(comms, 2, devices) == ncclSuccess, "two NCCL ranks on two devices");
  cudaStream_t s[2];
  float *src[2], *dst[2];
  for (int r = 0; r < 2; ++r) {
    cudaSetDevice(r);
    cudaStreamCreateWithFlags(&s[r], cudaStreamNonBlocking);
    cudaMalloc(&src[r], kN * sizeof(float));
    cudaMalloc(&dst[r], kN * sizeof(float));
  }
  // Rank 0 fills and sends, rank 1 receives into memory its stream fills first: the receive lands
  // after that fill and carries the send's data as of the send.
  cudaSetDevice(0);
  LaunchFill(src[0], kN, 1.5f, s[0]);
  ncclSend(src[0], kN, ncclFloat32, 1, comms[0], s[0]);
  LaunchFill(src[0], kN, 2.5f, s[0]);  // after the send: not what is sent
  cudaSetDevice(1);
  LaunchFill(dst[1], kN, -1.0f, s[1]);
  ncclRecv(dst[1], kN, ncclFloat32, 0, comms[1], s[1]);
  std::vector<float> got(kN, 0.0f);
  cudaMemcpyAsync(got.data(), dst[1], kN * sizeof(float), cudaMemcpyDeviceToHost, s[1]);
  cudaStreamSynchronize(s[1]);
  Expect(AllEqual(got.data(), kN, 1.5f), "an NCCL receive gets the data as of the send, in both streams' order");
  cudaSetDevice(0);
  cudaStreamSynchronize(s[0]);

  Expect(Aborts([&] {
    cudaSetDevice(0);
    ncclSend(src[0], kN, ncclFloat32, 0, comms[0], s[0]);
    ncclRecv(dst[0], kN, ncclFloat32, 0, comms[0], s[0]);
    cudaStreamSynchronize(s[0]);
  }), "a send to itself and its receive outside a group deadlock");
  Expect(Aborts([&] {
    for (int r = 0; r < 2; ++r) {
      cudaSetDevice(r);
      ncclSend(src[r], kN, ncclFloat32, 1 - r, comms[r], s[r]);
      ncclRecv(dst[r], kN, ncclFloat32, 1 - r, comms[r], s[r]);
    }
    cudaStreamSynchronize(s[1]);
  }), "two ranks that both send before they receive, outside a group, deadlock");
  Expect(!Aborts([&] {
    for (int r = 0; r < 2; ++r) {
      cudaSetDevice(r);
      ncclGroupStart();
      ncclSend(src[r], kN, ncclFloat32, 1 - r, comms[r], s[r]);
      ncclRecv(dst[r], kN, ncclFloat32, 1 - r, comms[r], s[r]);
      ncclGroupEnd();
    }
    cudaStreamSynchronize(s[1]);
    cudaSetDevice(0);
    cudaStreamSynchronize(s[0]);
  }), "grouped, they exchange");
  for (int r = 0; r < 2; ++r) {
    cudaSetDevice(r);
    cudaStreamDestroy(s[r]);
    cudaFree(src[r]);
    cudaFree(dst[r]);
    ncclCommDestroy(comms[r]);
  }
  cudaSetDevice(0);
}

}  // namespace

int main() {
  if (const char* mode = std::getenv("LMS_HOST_STREAMS"); mode != nullptr && std::strcmp(mode, "eager") == 0) {
    std::printf("skipped: LMS_HOST_STREAMS=eager runs all work at once, so there is no stream order to test\n");
    return 0;
  }
  CrossStream();
  LegacyAndBlocking();
  StagedAndTimed();
  PeerMemory();
  Nccl();
  if (g_failures > 0) std::printf("%d of the stream model's cases failed\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
