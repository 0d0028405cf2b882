// The CUDA runtime and cuBLAS on the CPU: see cuda_host_runtime.h for what is modelled and checked.
#include "cuda_host_runtime.h"
#include "host_streams.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

// The fibers' switch (cuda_host.h): push the callee-saved registers, save the stack pointer,
// load the other fiber's, pop its registers and return into it. x86-64 System V.
#if !defined(__x86_64__)
#error "the host emulation's fiber switch is written for x86-64"
#endif
asm(R"(
  .text
  .globl lms_host_switch
  .type lms_host_switch, @function
lms_host_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lms_host_switch, .-lms_host_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

namespace {

constexpr size_t kGuard = 256;  // guard bytes before and after each allocation (keeps 256-byte alignment)
constexpr unsigned char kGuardByte = 0xA5;

struct Allocation {
  size_t bytes;
  int device;  // -1: pinned host memory
  unsigned char* raw;
  bool pooled = false;  // from cudaMallocAsync: the device's default pool
};

std::mutex g_mutex;
std::map<uintptr_t, Allocation> g_allocs;  // by user address
size_t g_device_bytes = 0;
// Which device's kernels may reach which other device's memory: by cudaDeviceEnablePeerAccess
// (memory from cudaMalloc), by cudaMemPoolSetAccess (memory from the default pool).
std::set<std::pair<int, int>> g_peer_access, g_pool_access;  // (accessing device, owner)

int DeviceCount() {
  static const int n = [] {
    const char* e = std::getenv("LMS_HOST_GPUS");
    return e && *e ? std::max(0, std::atoi(e)) : 2;
  }();
  return n;
}

bool GuardIntact(const uintptr_t user, const Allocation& a) {
  const unsigned char* front = a.raw;
  const unsigned char* back = reinterpret_cast<const unsigned char*>(user) + a.bytes;
  for (size_t i = 0; i < kGuard; ++i) {
    if (front[i] != kGuardByte || back[i] != kGuardByte) return false;
  }
  return true;
}

// Aborts when any allocation's guard bytes were written: `what` wrote past a buffer.
void CheckGuardsLocked(const char* what) {
  for (const auto& [user, a] : g_allocs) {
    if (!GuardIntact(user, a)) {
      std::fprintf(stderr, "cuda_host: %s wrote outside a %zu-byte %s buffer\n", what, a.bytes,
                   a.device >= 0 ? "device" : "pinned host");
      std::abort();
    }
  }
}

void AfterLaunch(const char* kernel) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CheckGuardsLocked(kernel);
}

cudaError_t Allocate(void** p, size_t bytes, int device, bool pooled = false) {
  if (p == nullptr) return cudaErrorInvalidValue;
  const size_t body = (bytes + 255) / 256 * 256;
  auto* raw = static_cast<unsigned char*>(std::aligned_alloc(256, body + 2 * kGuard));
  if (raw == nullptr) return cudaErrorMemoryAllocation;
  std::memset(raw, kGuardByte, kGuard);
  std::memset(raw + kGuard, 0xFF, bytes);  // NaN as fp32 and bf16
  std::memset(raw + kGuard + bytes, kGuardByte, body - bytes + kGuard);
  *p = raw + kGuard;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_host_after_launch = AfterLaunch;
  g_allocs[reinterpret_cast<uintptr_t>(*p)] = Allocation{bytes, device, raw, pooled};
  if (device >= 0) g_device_bytes += bytes;
  return cudaSuccess;
}

cudaError_t Free(void* p, bool pinned) {
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end() || (it->second.device < 0) != pinned) {
    std::fprintf(stderr, "cuda_host: free of %p, which is not a live %s allocation\n", p, pinned ? "pinned" : "device");
    return cudaErrorInvalidValue;
  }
  if (!GuardIntact(it->first, it->second)) {
    std::fprintf(stderr, "cuda_host: a %zu-byte buffer freed with its guard bytes overwritten\n", it->second.bytes);
    std::abort();
  }
  if (it->second.device >= 0) g_device_bytes -= it->second.bytes;
  std::free(it->second.raw);
  g_allocs.erase(it);
  return cudaSuccess;
}

// The live allocation p points into, or null.
const Allocation* HoldingLocked(const void* p) {
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(u);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  return u < it->first + it->second.bytes ? &it->second : nullptr;
}

// The allocation holding [p, p + bytes), or null (with a message naming `what`).
const Allocation* FindLocked(const void* p, size_t bytes, const char* what) {
  const uintptr_t u = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(u);
  if (it != g_allocs.begin()) {
    --it;
    if (u >= it->first && u + bytes <= it->first + it->second.bytes) return &it->second;
    if (u >= it->first && u < it->first + it->second.bytes) {
      std::fprintf(stderr, "cuda_host: %s: %zu bytes at offset %zu run past the end of a %zu-byte buffer\n", what,
                   bytes, static_cast<size_t>(u - it->first), it->second.bytes);
      return nullptr;
    }
  }
  std::fprintf(stderr, "cuda_host: %s: %p is not in any live device allocation\n", what, p);
  return nullptr;
}

bool IsDevice(const void* p, size_t bytes, const char* what) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Allocation* a = FindLocked(p, bytes, what);
  if (a && a->device < 0) {
    std::fprintf(stderr, "cuda_host: %s: %p is pinned host memory, not device memory\n", what, p);
    return false;
  }
  return a != nullptr;
}

// The device sides of a copy of `kind` (the destination's span, the source's) lie in live device
// allocations.
bool DeviceSidesValid(cudaMemcpyKind kind, const void* dst, size_t dst_span, const void* src, size_t src_span,
                      const char* what) {
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  return (!dst_dev || IsDevice(dst, dst_span, what)) && (!src_dev || IsDevice(src, src_span, what));
}

// The stream this thread is capturing into, if any (thread-local capture mode).
thread_local HostStream* g_capturing = nullptr;

// True (and the capture invalidated) when `what` may not run while this thread captures.
bool ForbiddenInCapture(const char* what) {
  if (g_capturing == nullptr) return false;
  std::fprintf(stderr, "cuda_host: %s while capturing a graph: not permitted; the capture is invalidated\n", what);
  g_capturing->capture_invalidated = true;
  return true;
}

// ---- Streams. Each stream (and each device's legacy default stream) is a queue of work that
// runs only when the program must wait for it: a synchronize, a blocking copy to the host, a wait
// on an event recorded after it, a free. Work of different streams thus runs in the latest order
// CUDA allows, so a missing wait between streams, or a host read without one, gives a wrong
// result instead of passing by luck. When the host waits for several streams at once (a device
// synchronize, a free) they run one after another, in the order the streams were first used, or
// the reverse with LMS_HOST_STREAMS=reversed: a stream reusing a buffer that another still reads shows
// in one of the two orders. LMS_HOST_STREAMS=eager runs all work at once instead.
using Queue = HostQueue;
using QueueRef = HostQueueRef;

std::recursive_mutex g_work_mutex;  // every queue; held while work runs
std::condition_variable_any g_work_cv;  // work queued or done
// Never destroyed: streams may still be synchronized while statics are torn down.
auto& g_queues = *new std::map<const HostStream*, QueueRef>();
auto& g_legacy = *new std::map<int, QueueRef>();

bool StreamsMode(const char* mode) {
  const char* e = std::getenv("LMS_HOST_STREAMS");
  return e != nullptr && std::strcmp(e, mode) == 0;
}
bool Eager() {
  static const bool eager = StreamsMode("eager");
  return eager;
}

QueueRef QueueOf(cudaStream_t s) {
  static uint64_t created = 0;
  QueueRef& q = s == nullptr ? g_legacy[g_host_device] : g_queues[s];
  if (!q) {
    q = std::make_shared<Queue>();
    q->device = s == nullptr ? g_host_device : s->device;
    q->legacy = s == nullptr;
    q->blocking = s != nullptr && (s->flags & cudaStreamNonBlocking) == 0;
    q->created = ++created;
  }
  return q;
}

// Runs q's work up to and including number `seq`.
void RunUntil(Queue& q, uint64_t seq) {
  while (q.done < seq) {
    if (q.running != 0) {
      if (q.runner == std::this_thread::get_id()) {
        std::fprintf(stderr, "cuda_host: deadlock: work on a stream of device %d waits for work queued after it on "
                     "the same stream (on a GPU this hangs)\n", q.device);
        std::abort();
      }
      HostWaitForWork("a stream whose work another thread is running");  // it may wait for a peer
      continue;
    }
    HostWork w = std::move(q.work.front());
    q.work.pop_front();
    q.running = w.seq;
    q.runner = std::this_thread::get_id();
    w.run();
    q.running = 0;
    q.done = w.seq;
    g_work_cv.notify_all();
  }
}
void Drain(const QueueRef& q) { RunUntil(*q, q->issued); }

uint64_t Push(Queue& q, std::function<void()> run) {
  q.work.push_back(HostWork{++q.issued, std::move(run)});
  g_work_cv.notify_all();
  return q.issued;
}
// Work on q's stream after what q waits for: the legacy stream waits for the device's blocking
// streams, and they for it.
uint64_t Enqueue(const QueueRef& q, std::function<void()> run,
                 const std::function<void(uint64_t)>& numbered = nullptr) {
  auto wait_for = [&q](const QueueRef& other) {
    if (other != q && other->device == q->device && other->issued > other->done) {
      Push(*q, [other, seq = other->issued] { RunUntil(*other, seq); });
    }
  };
  if (q->legacy) {
    for (const auto& [stream, other] : g_queues) {
      if (other->blocking) wait_for(other);
    }
  } else if (q->blocking) {
    auto it = g_legacy.find(q->device);
    if (it != g_legacy.end()) wait_for(it->second);
  }
  const uint64_t seq = Push(*q, std::move(run));
  if (numbered) numbered(seq);
  if (Eager()) Drain(q);
  return seq;
}

// Runs all the work of the queues on `device` (every device if negative).
void DrainDevice(int device) {
  static const bool reversed = StreamsMode("reversed");
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  std::vector<QueueRef> queues;
  for (const auto& [d, q] : g_legacy) queues.push_back(q);
  for (const auto& [s, q] : g_queues) queues.push_back(q);
  std::sort(queues.begin(), queues.end(), [](const QueueRef& a, const QueueRef& b) {
    return reversed ? a->created > b->created : a->created < b->created;
  });
  for (const QueueRef& q : queues) {
    if (device < 0 || q->device == device) Drain(q);
  }
}
void DrainAll() { DrainDevice(-1); }

}  // namespace

std::recursive_mutex& HostWorkMutex() { return g_work_mutex; }
HostQueueRef HostQueueOf(cudaStream_t s) { return QueueOf(s); }
uint64_t HostEnqueue(const HostQueueRef& q, std::function<void()> run, const std::function<void(uint64_t)>& numbered) {
  return Enqueue(q, std::move(run), numbered);
}
void HostNotifyWork() { g_work_cv.notify_all(); }
void HostRunUntil(HostQueue& q, uint64_t seq) { RunUntil(q, seq); }
void HostWaitForWork(const char* what) {
  // The caller holds the mutex once (no API call holds it twice), so this releases it.
  std::unique_lock<std::recursive_mutex> lock(g_work_mutex, std::adopt_lock);
  const bool woken = g_work_cv.wait_for(lock, std::chrono::minutes(2)) == std::cv_status::no_timeout;
  lock.release();
  if (!woken) {
    std::fprintf(stderr, "cuda_host: deadlock: %s: nothing queued or done anywhere for two minutes\n", what);
    std::abort();
  }
}
bool HostIsDeviceMemory(const void* p, size_t bytes, const char* what) { return IsDevice(p, bytes, what); }

namespace {

// Records `run` when s is capturing; else queues it on s and, if the host waits for it, runs the
// stream up to it.
void Submit(cudaStream_t s, std::function<void()> run, bool host_waits = false) {
  if (s != nullptr && s->capture != nullptr) {
    s->capture->push_back(std::move(run));
    return;
  }
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  const QueueRef q = QueueOf(s);
  const uint64_t seq = Enqueue(q, std::move(run));
  if (host_waits) RunUntil(*q, seq);
}

// The allocation p lies in: its device, -1 for pinned host memory, -2 for none.
int OwnerOf(const void* p) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Allocation* a = HoldingLocked(p);
  return a ? a->device : -2;
}

// A copy of `kind` on stream s (null: the legacy stream). `blocking` is cudaMemcpy's: it returns
// once a copy to the host is done, but after a copy from pageable host memory only once the data
// is staged, so device work on another stream may still miss it. Pageable host sources are read
// at the call (staged); pinned ones when the copy runs.
cudaError_t Copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* what,
                 cudaStream_t s = nullptr, bool blocking = false) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return cudaErrorInvalidValue;
  if (kind == cudaMemcpyDefault) {  // unified addressing: the pointers tell the direction
    const bool d = OwnerOf(dst) >= 0, s_dev = OwnerOf(src) >= 0;
    kind = d ? (s_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
             : (s_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  if (!DeviceSidesValid(kind, dst, bytes, src, bytes, what)) return cudaErrorInvalidValue;
  const bool from_host = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
  const bool to_host = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost;
  const bool pinned_src = from_host && OwnerOf(src) == -1;
  std::function<void()> run;
  if (from_host && !pinned_src && (s == nullptr || s->capture == nullptr)) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + bytes);
    run = [=] { std::memcpy(dst, staged->data(), bytes); };
  } else {
    run = [=] { std::memmove(dst, src, bytes); };
  }
  Submit(s, [run, what] {
    run();
    std::lock_guard<std::mutex> lock(g_mutex);
    CheckGuardsLocked(what);
  }, blocking && (to_host || pinned_src));
  return cudaSuccess;
}

bool ValidDevice(int d) { return d >= 0 && d < DeviceCount(); }

}  // namespace

struct HostGraph {
  std::vector<std::function<void()>> ops;
};

// An event: the device it belongs to, and its last record: the stream's queue and the number of
// the work that stamps its time.
struct HostEvent {
  int device = 0;
  unsigned flags = 0;
  bool recorded = false;
  QueueRef queue;
  uint64_t seq = 0;
  std::shared_ptr<std::chrono::steady_clock::time_point> at;
};

void HostSubmit(cudaStream_t s, std::function<void()> work) { Submit(s, std::move(work)); }
struct HostMemPool {
  int device = 0;
};
struct HostCublas {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unknown error";
  }
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    default: return "cudaErrorUnknown";
  }
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = DeviceCount();
  return DeviceCount() > 0 ? cudaSuccess : cudaErrorNoDevice;
}
cudaError_t cudaGetDevice(int* d) {
  *d = g_host_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  if (!ValidDevice(d)) return cudaErrorInvalidDevice;
  g_host_device = d;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (!ValidDevice(d)) return cudaErrorInvalidDevice;
  *p = cudaDeviceProp{};
  std::snprintf(p->name, sizeof p->name, "host emulation %d", d);
  p->totalGlobalMem = size_t{8} << 30;
  p->sharedMemPerBlock = kHostDefaultSmem;
  p->sharedMemPerBlockOptin = kHostMaxSmem;
  p->multiProcessorCount = 132;
  p->major = 9;
  p->minor = 0;
  p->pciBusID = d + 1;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetPCIBusId(char* id, int len, int d) {
  if (!ValidDevice(d) || len < 13) return cudaErrorInvalidValue;
  std::snprintf(id, static_cast<size_t>(len), "0000:%02x:00.0", d + 1);
  return cudaSuccess;
}
cudaError_t cudaDeviceCanAccessPeer(int* can, int d, int peer) {
  if (!ValidDevice(d) || !ValidDevice(peer)) return cudaErrorInvalidDevice;
  *can = d != peer;
  return cudaSuccess;
}
cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned) {
  if (!ValidDevice(peer) || peer == g_host_device) return cudaErrorInvalidDevice;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_peer_access.insert({g_host_device, peer});
  return cudaSuccess;
}
void HostCheckKernelPointer(const char* kernel, const void* p, int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Allocation* held = p ? HoldingLocked(p) : nullptr;
  if (held == nullptr || held->device < 0 || held->device == device) return;
  const Allocation& a = *held;
  if ((a.pooled ? g_pool_access : g_peer_access).count({device, a.device}) > 0) return;
  std::fprintf(stderr, "cuda_host: %s launched on device %d is passed memory of device %d, which it may not reach (%s)\n",
               kernel, device, a.device, a.pooled ? "no cudaMemPoolSetAccess" : "no peer access enabled");
  std::abort();
}
cudaError_t cudaDeviceSynchronize() {
  if (ForbiddenInCapture("cudaDeviceSynchronize")) return cudaErrorStreamCaptureUnsupported;
  DrainDevice(g_host_device);
  std::lock_guard<std::mutex> lock(g_mutex);
  CheckGuardsLocked("work before cudaDeviceSynchronize");
  return cudaSuccess;
}
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d) {
  static HostMemPool pools[64];
  if (!ValidDevice(d) || d >= 64) return cudaErrorInvalidDevice;
  pools[d].device = d;
  *pool = &pools[d];
  return cudaSuccess;
}
cudaError_t cudaMemPoolSetAccess(cudaMemPool_t pool, const cudaMemAccessDesc* desc, size_t count) {
  if (pool == nullptr) return cudaErrorInvalidValue;
  for (size_t i = 0; i < count; ++i) {
    if (desc[i].location.type != cudaMemLocationTypeDevice || !ValidDevice(desc[i].location.id)) {
      return cudaErrorInvalidValue;
    }
    // The driver refuses to change the owning device's own access.
    if (desc[i].location.id == pool->device) return cudaErrorInvalidDevice;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  for (size_t i = 0; i < count; ++i) {
    const std::pair<int, int> pair{desc[i].location.id, pool->device};
    if (desc[i].flags == cudaMemAccessFlagsProtNone) {
      g_pool_access.erase(pair);
    } else {
      g_pool_access.insert(pair);
    }
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int d) {
  if (!ValidDevice(d)) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMemoryClockRate: *value = 2619000; return cudaSuccess;  // kHz, as an H100 SXM reports
    case cudaDevAttrGlobalMemoryBusWidth: *value = 5120; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *total_bytes = size_t{8} << 30;
  *free_bytes = *total_bytes - std::min(*total_bytes, g_device_bytes);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (ForbiddenInCapture("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
  return Allocate(p, bytes, g_host_device);
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s) {
  return Allocate(p, bytes, s ? s->device : g_host_device, true);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  if (ForbiddenInCapture("cudaMallocHost")) return cudaErrorStreamCaptureUnsupported;
  return Allocate(p, bytes, -1);
}
cudaError_t cudaFree(void* p) {
  if (ForbiddenInCapture("cudaFree")) return cudaErrorStreamCaptureUnsupported;
  DrainAll();  // cudaFree synchronizes
  return Free(p, false);
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (p == nullptr) return cudaSuccess;
  if (!IsDevice(p, 1, "cudaFreeAsync")) return cudaErrorInvalidValue;
  Submit(s, [p] {
    if (Free(p, false) != cudaSuccess) std::abort();
  });
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  DrainAll();
  return Free(p, true);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (ForbiddenInCapture("cudaMemcpy")) return cudaErrorStreamCaptureUnsupported;
  return Copy(dst, src, bytes, kind, "cudaMemcpy", nullptr, true);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  return Copy(dst, src, bytes, kind, "cudaMemcpyAsync", s);
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  if (ForbiddenInCapture("cudaMemcpy2D")) return cudaErrorStreamCaptureUnsupported;
  if (width > dpitch || width > spitch) return cudaErrorInvalidValue;
  if (width == 0 || height == 0) return cudaSuccess;
  if (!DeviceSidesValid(kind, dst, (height - 1) * dpitch + width, src, (height - 1) * spitch + width, "cudaMemcpy2D")) {
    return cudaErrorInvalidValue;
  }
  // Runs in order on the legacy stream; the host waits for it (as for every 2D copy here, whatever
  // the memory).
  Submit(nullptr, [=] {
    for (size_t r = 0; r < height; ++r) {
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    CheckGuardsLocked("cudaMemcpy2D");
  }, true);
  return cudaSuccess;
}
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
                                cudaStream_t s) {
  if (!ValidDevice(dst_device) || !ValidDevice(src_device)) return cudaErrorInvalidDevice;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    const Allocation* d = FindLocked(dst, bytes, "cudaMemcpyPeerAsync (destination)");
    const Allocation* s = FindLocked(src, bytes, "cudaMemcpyPeerAsync (source)");
    if (!d || !s) return cudaErrorInvalidValue;
    if (d->device != dst_device || s->device != src_device) {
      std::fprintf(stderr, "cuda_host: cudaMemcpyPeerAsync: buffers on devices %d and %d named as %d and %d\n",
                   d->device, s->device, dst_device, src_device);
      return cudaErrorInvalidValue;
    }
  }
  return Copy(dst, src, bytes, cudaMemcpyDeviceToDevice, "cudaMemcpyPeerAsync", s);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (ForbiddenInCapture("cudaMemset")) return cudaErrorStreamCaptureUnsupported;
  return cudaMemsetAsync(p, value, bytes, nullptr);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (bytes == 0) return cudaSuccess;
  if (!IsDevice(p, bytes, "cudaMemset")) return cudaErrorInvalidValue;
  Submit(s, [=] { std::memset(p, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new HostStream{g_host_device, flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s == nullptr) return cudaErrorInvalidResourceHandle;
  {
    // The stream's work still completes; events recorded on it keep its queue.
    std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
    auto it = g_queues.find(s);
    if (it != g_queues.end()) {
      Drain(it->second);
      g_queues.erase(it);
    }
  }
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (ForbiddenInCapture("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  Drain(QueueOf(s));
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (s == nullptr || s->capture != nullptr || g_capturing != nullptr) return cudaErrorInvalidValue;
  s->capture = new std::vector<std::function<void()>>();
  s->capture_invalidated = false;
  g_capturing = s;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  if (s == nullptr || s->capture == nullptr || g_capturing != s) return cudaErrorInvalidValue;
  std::unique_ptr<std::vector<std::function<void()>>> ops(s->capture);
  s->capture = nullptr;
  g_capturing = nullptr;
  *graph = nullptr;
  if (s->capture_invalidated) return cudaErrorStreamCaptureInvalidated;
  *graph = new HostGraph{std::move(*ops)};
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return cudaErrorInvalidValue;
  *exec = new HostGraph{graph->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (exec == nullptr) return cudaErrorInvalidValue;
  if (s != nullptr && s->device != g_host_device) return cudaErrorInvalidResourceHandle;
  Submit(s, [exec] {
    for (const auto& op : exec->ops) op();
  });
  return cudaGetLastError();  // what a replayed launch refused
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  if (s != nullptr && s->capture != nullptr) return cudaSuccess;  // within one captured stream: in order anyway
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  // The event's record as of now; a wait on one never recorded is no wait.
  if (e->queue) Enqueue(QueueOf(s), [q = e->queue, seq = e->seq] { RunUntil(*q, seq); });
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
  *e = new HostEvent{g_host_device, flags, false, nullptr, 0, nullptr};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  // An event belongs to the device current at its creation; so must the stream it is recorded on.
  const int stream_device = s ? s->device : g_host_device;
  if (stream_device != e->device) {
    std::fprintf(stderr, "cuda_host: an event of device %d recorded on a stream of device %d\n", e->device, stream_device);
    return cudaErrorInvalidResourceHandle;
  }
  auto at = std::make_shared<std::chrono::steady_clock::time_point>();
  e->recorded = true;
  e->at = at;
  if (s != nullptr && s->capture != nullptr) {  // not a node of the graph here: stamped now
    *at = std::chrono::steady_clock::now();
    e->queue = nullptr;
    return cudaSuccess;
  }
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  e->queue = QueueOf(s);
  e->seq = Enqueue(e->queue, [at] { *at = std::chrono::steady_clock::now(); });
  return cudaSuccess;
}
namespace {
bool EventDone(cudaEvent_t e) { return !e->queue || e->queue->done >= e->seq; }
}  // namespace
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (ForbiddenInCapture("cudaEventSynchronize")) return cudaErrorStreamCaptureUnsupported;
  if (e == nullptr) return cudaErrorInvalidResourceHandle;
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  if (e->queue) RunUntil(*e->queue, e->seq);
  return cudaSuccess;
}
// A query lets the event's stream run up to it, so a polling loop ends.
cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start || !end || (start->flags & cudaEventDisableTiming) || (end->flags & cudaEventDisableTiming) ||
      !start->recorded || !end->recorded) {
    return cudaErrorInvalidResourceHandle;
  }
  std::lock_guard<std::recursive_mutex> lock(g_work_mutex);
  if (!EventDone(start) || !EventDone(end)) return cudaErrorNotReady;  // the host did not wait for them
  *ms = std::chrono::duration<float, std::milli>(*end->at - *start->at).count();
  return cudaSuccess;
}

long HostLaunchCount() {
  std::lock_guard<std::recursive_mutex> lock(g_host_launch_mutex);
  return g_host.launches;
}
size_t HostDeviceBytesInUse() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_device_bytes;
}

// ---- cuBLAS
namespace {

size_t ElementBytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

float Tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;  // to nearest, ties away
  std::memcpy(&x, &u, 4);
  return x;
}

double Load(const void* p, cudaDataType_t t, int64_t i, bool tf32) {
  if (t == CUDA_R_32F) {
    const float x = static_cast<const float*>(p)[i];
    return tf32 ? Tf32(x) : x;
  }
  const uint16_t u = static_cast<const uint16_t*>(p)[i];
  return t == CUDA_R_16BF ? HostFromBf16(u) : HostFromHalf(u);
}

// The bytes a column-major operand of `rows` × `cols` (as stored) with leading dimension ld spans.
size_t Span(int rows, int cols, int ld, cudaDataType_t t) {
  if (rows == 0 || cols == 0) return 0;
  return (static_cast<size_t>(cols - 1) * static_cast<size_t>(ld) + static_cast<size_t>(rows)) * ElementBytes(t);
}

struct GemmArgs {
  cublasHandle_t h;
  cublasOperation_t ta, tb;
  int m, n, k;
  float alpha, beta;
  cudaDataType_t at, bt, ct;
  int lda, ldb, ldc;
  cublasComputeType_t compute;
};

cublasStatus_t CheckGemm(const GemmArgs& g) {
  if (g.h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (g.m < 0 || g.n < 0 || g.k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.lda < std::max(1, g.ta == CUBLAS_OP_N ? g.m : g.k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.ldb < std::max(1, g.tb == CUBLAS_OP_N ? g.k : g.n)) return CUBLAS_STATUS_INVALID_VALUE;
  if (g.ldc < std::max(1, g.m)) return CUBLAS_STATUS_INVALID_VALUE;
  // cublasGemmEx's table for CUBLAS_COMPUTE_32F: A and B of one type; C fp32, or of A's type.
  if (g.at != g.bt || (g.ct != CUDA_R_32F && g.ct != g.at) ||
      (g.at != CUDA_R_32F && g.at != CUDA_R_16BF && g.at != CUDA_R_16F)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (g.compute != CUBLAS_COMPUTE_32F && !(g.compute == CUBLAS_COMPUTE_32F_FAST_TF32 && g.at == CUDA_R_32F)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (g.h->device != g_host_device || (g.h->stream && g.h->stream->device != g.h->device)) {
    std::fprintf(stderr, "cuda_host: a cuBLAS handle of device %d used with device %d current\n", g.h->device,
                 g_host_device);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  return CUBLAS_STATUS_SUCCESS;
}

// Whether one product's operands lie in device memory.
bool GemmOperandsValid(const GemmArgs& g, const void* A, const void* B, const void* C) {
  if (g.m == 0 || g.n == 0) return true;
  const int a_rows = g.ta == CUBLAS_OP_N ? g.m : g.k, a_cols = g.ta == CUBLAS_OP_N ? g.k : g.m;
  const int b_rows = g.tb == CUBLAS_OP_N ? g.k : g.n, b_cols = g.tb == CUBLAS_OP_N ? g.n : g.k;
  return (g.k == 0 || (IsDevice(A, Span(a_rows, a_cols, g.lda, g.at), "cuBLAS product (A)") &&
                       IsDevice(B, Span(b_rows, b_cols, g.ldb, g.bt), "cuBLAS product (B)"))) &&
         IsDevice(C, Span(g.m, g.n, g.ldc, g.ct), "cuBLAS product (C)");
}

// One product (its operands checked by GemmOperandsValid). A 16-bit C is read and written
// rounded to nearest even, as cuBLAS does after accumulating in fp32.
void GemmOne(const GemmArgs& g, const void* A, const void* B, void* C) {
  if (g.m == 0 || g.n == 0) return;
  const bool tf32 = g.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  std::vector<double> a(static_cast<size_t>(g.m) * g.k), bt(static_cast<size_t>(g.n) * g.k);
  for (int i = 0; i < g.m; ++i) {
    for (int l = 0; l < g.k; ++l) {
      const int64_t at = g.ta == CUBLAS_OP_N ? i + int64_t{l} * g.lda : l + int64_t{i} * g.lda;
      a[static_cast<size_t>(i) * g.k + l] = Load(A, g.at, at, tf32);
    }
  }
  for (int j = 0; j < g.n; ++j) {
    for (int l = 0; l < g.k; ++l) {
      const int64_t at = g.tb == CUBLAS_OP_N ? l + int64_t{j} * g.ldb : j + int64_t{l} * g.ldb;
      bt[static_cast<size_t>(j) * g.k + l] = Load(B, g.bt, at, tf32);
    }
  }
  for (int j = 0; j < g.n; ++j) {
    for (int i = 0; i < g.m; ++i) {
      const double* x = &a[static_cast<size_t>(i) * g.k];
      const double* y = &bt[static_cast<size_t>(j) * g.k];
      double p[4] = {0.0, 0.0, 0.0, 0.0};  // four running sums, which the compiler can vectorize
      int l = 0;
      for (; l + 4 <= g.k; l += 4) {
        for (int e = 0; e < 4; ++e) p[e] += x[l + e] * y[l + e];
      }
      double s = (p[0] + p[1]) + (p[2] + p[3]);
      for (; l < g.k; ++l) s += x[l] * y[l];
      const int64_t at = i + int64_t{j} * g.ldc;
      // beta 0: C is not read
      const double prior = g.beta == 0.0f ? 0.0 : static_cast<double>(g.beta) * Load(C, g.ct, at, false);
      const float c = static_cast<float>(g.alpha * s + prior);
      if (g.ct == CUDA_R_32F) static_cast<float*>(C)[at] = c;
      else static_cast<uint16_t*>(C)[at] = g.ct == CUDA_R_16BF ? HostToBf16(c) : HostToHalf(c);
    }
  }
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new HostCublas{g_host_device, nullptr, CUBLAS_DEFAULT_MATH};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void*, size_t) {
  return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t ta_type, int lda, const void* B,
                            cudaDataType_t tb_type, int ldb, const void* beta, void* C, cudaDataType_t tc_type,
                            int ldc, cublasComputeType_t compute, cublasGemmAlgo_t) {
  const GemmArgs g{h,     ta,      tb,      m,      n,   k,   *static_cast<const float*>(alpha),
                   *static_cast<const float*>(beta), ta_type, tb_type, tc_type, lda, ldb, ldc, compute};
  if (const cublasStatus_t s = CheckGemm(g); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!GemmOperandsValid(g, A, B, C)) return CUBLAS_STATUS_INVALID_VALUE;
  Submit(h->stream, [g, A, B, C] { GemmOne(g, A, B, C); });
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* const A[], cudaDataType_t ta_type, int lda,
                                   const void* const B[], cudaDataType_t tb_type, int ldb, const void* beta,
                                   void* const C[], cudaDataType_t tc_type, int ldc, int count,
                                   cublasComputeType_t compute, cublasGemmAlgo_t) {
  const GemmArgs g{h,     ta,      tb,      m,      n,   k,   *static_cast<const float*>(alpha),
                   *static_cast<const float*>(beta), ta_type, tb_type, tc_type, lda, ldb, ldc, compute};
  if (const cublasStatus_t s = CheckGemm(g); s != CUBLAS_STATUS_SUCCESS) return s;
  if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (count == 0) return CUBLAS_STATUS_SUCCESS;
  // The pointer arrays themselves live in device memory.
  const size_t ptr_bytes = sizeof(void*) * static_cast<size_t>(count);
  if (!IsDevice(A, ptr_bytes, "cuBLAS batched product (A pointers)") ||
      !IsDevice(B, ptr_bytes, "cuBLAS batched product (B pointers)") ||
      !IsDevice(C, ptr_bytes, "cuBLAS batched product (C pointers)")) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // The arrays are read when the product runs (earlier work may fill them); an operand outside
  // device memory then aborts, as the error cannot be returned any more.
  Submit(h->stream, [g, A, B, C, count] {
    for (int i = 0; i < count; ++i) {
      if (!GemmOperandsValid(g, A[i], B[i], C[i])) std::abort();
      GemmOne(g, A[i], B[i], C[i]);
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}
