// Runs CUDA kernel source on the CPU, for tests on machines without a GPU. Each CUDA thread of a
// block is a fiber on the launching OS thread; __syncthreads and warp shuffles are
// barriers over those fibers; mma.sync m16n8k16 (f16 or bf16 operands, fp32 accumulation) is
// computed from the 32 lanes' registers with the PTX ISA's fragment layouts. Blocks run one after
// another (first to last, or last to first: HostOrder below; a block's threads likewise between
// two barriers) and launches one at a time (a lock), so a kernel's static __shared__ arrays, which
// patch_kernels.py makes function-local statics, are the running block's. Dynamic shared memory
// starts as NaN in both 16-bit formats, so a read of anything unwritten shows in the results.
//
// A launch is refused as the driver would refuse it: more than 1024 threads a block, an empty or
// oversized grid, dynamic shared memory above 48 KiB without cudaFuncSetAttribute's opt-in for
// that kernel, or above the card's 227 KiB. A programmatic dependent launch (cudaLaunchKernelEx)
// runs after the work before it like any other, and aborts if a block of it never waits
// (gpu/ops/launch.cuh's PdlWait).
//
// The kernels are compiled from their own source after patch_kernels.py has replaced what a C++
// compiler cannot take: the mma asm (by HostMma), the extern __shared__ array (by g_host_smem),
// static __shared__ arrays (by statics) and <<<…>>> launches (by HostLaunch). The CUDA runtime
// and cuBLAS calls of the host code are cuda_host_runtime.h's.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
// Aligned as CUDA aligns them, so UBSan's alignment check (the sanitizer build) sees a vector
// load from an address the GPU would refuse as misaligned.
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  uint32_t x, y;
};
struct alignas(16) uint4 {
  uint32_t x, y, z, w;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }

using cudaError_t = int;
constexpr int cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2,
              cudaErrorInvalidConfiguration = 9, cudaErrorNoDevice = 100, cudaErrorInvalidDevice = 101,
              cudaErrorInvalidResourceHandle = 400, cudaErrorNotReady = 600, cudaErrorStreamCaptureUnsupported = 900,
              cudaErrorStreamCaptureInvalidated = 901;

// The calling thread's current device (cudaSetDevice), and a stream: its device and flags.
inline thread_local int g_host_device = 0;
// While a stream captures a graph, its work is recorded here instead of run.
struct HostStream {
  int device = 0;
  unsigned flags = 0;
  std::vector<std::function<void()>>* capture = nullptr;
  bool capture_invalidated = false;
};
using cudaStream_t = HostStream*;
// Hands work for stream s (null: the current device's legacy default stream) to the runtime
// (host_runtime.cpp), which runs it when the program waits for it.
void HostSubmit(cudaStream_t s, std::function<void()> work);
// Aborts, naming the kernel, when p lies in memory of another device that `device` may not reach
// (no peer access, no pool access granted): a kernel would fault there (host_runtime.cpp).
void HostCheckKernelPointer(const char* kernel, const void* p, int device);
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

// The sticky error of the last launch, read and cleared by cudaGetLastError.
inline thread_local cudaError_t g_host_launch_error = cudaSuccess;
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = g_host_launch_error;
  g_host_launch_error = cudaSuccess;
  return e;
}

// Opt-ins to more than 48 KiB of dynamic shared memory, per kernel.
constexpr size_t kHostDefaultSmem = 48 * 1024, kHostMaxSmem = 227 * 1024;
inline std::mutex g_host_attr_mutex;
inline std::map<const void*, size_t> g_host_smem_optin;
template <class K>
inline cudaError_t cudaFuncSetAttribute(K kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || static_cast<size_t>(value) > kHostMaxSmem) {
    return cudaErrorInvalidValue;
  }
  std::lock_guard<std::mutex> lock(g_host_attr_mutex);
  g_host_smem_optin[reinterpret_cast<const void*>(kernel)] = static_cast<size_t>(value);
  return cudaSuccess;
}

// CUDA's device min and max (same-typed operands here).
template <class T>
inline T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
inline T max(T a, T b) {
  return a < b ? b : a;
}

// Device arithmetic with one rounding per operation (the build turns off FMA contraction).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
// The bits of one value as another type of the same size.
template <class To, class From>
inline To HostBitCast(From f) {
  static_assert(sizeof(To) == sizeof(From));
  To t;
  std::memcpy(&t, &f, sizeof t);
  return t;
}
inline unsigned __float_as_uint(float f) { return HostBitCast<unsigned>(f); }
inline float __uint_as_float(unsigned u) { return HostBitCast<float>(u); }

// 16-bit floats: f16 through the compiler's _Float16, bf16 by rounding to nearest even.
struct __half {
  uint16_t x;
};
struct alignas(4) __half2 {
  uint16_t x, y;
};
struct __nv_bfloat16 {
  uint16_t x;
};
struct alignas(4) __nv_bfloat162 {
  uint16_t x, y;
};
inline uint16_t HostToHalf(float f) { return HostBitCast<uint16_t>(static_cast<_Float16>(f)); }
inline float HostFromHalf(uint16_t u) { return static_cast<float>(HostBitCast<_Float16>(u)); }
inline uint16_t HostToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float HostFromBf16(uint16_t u) {
  const uint32_t v = static_cast<uint32_t>(u) << 16;
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline __half2 __floats2half2_rn(float lo, float hi) { return {HostToHalf(lo), HostToHalf(hi)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {HostToBf16(lo), HostToBf16(hi)}; }
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return {HostToBf16(x)}; }
inline __nv_bfloat16 __float2bfloat16(float x) { return {HostToBf16(x)}; }
inline float __bfloat162float(__nv_bfloat16 b) { return HostFromBf16(b.x); }
inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }
inline __half __ushort_as_half(uint16_t u) { return {u}; }
inline __half __float2half_rn(float x) { return {HostToHalf(x)}; }
inline __half __float2half(float x) { return {HostToHalf(x)}; }
inline uint16_t __half_as_ushort(__half h) { return h.x; }
inline float __half2float(__half h) { return HostFromHalf(h.x); }

// ---- threads as fibers
// A fiber switch saves the callee-saved registers on the running stack and swaps stack pointers
// (host_runtime.cpp; x86-64): ucontext's swapcontext would make two system calls a switch for
// the signal mask, and a kernel switches at every barrier and shuffle.
extern "C" void lms_host_switch(void** save_sp, void* load_sp);

struct HostFiber {
  void* sp = nullptr;
  dim3 tid;
  bool done = false;
};
struct HostBarrier {
  int n = 0, count = 0;
  long generation = 0;
};
// The order in which the emulation runs a grid's blocks and, between two barriers, a block's
// threads: block 0 and thread 0 first, or with LMS_HOST_ORDER=reverse the last first. A GPU
// promises neither. A kernel whose threads share memory without the barrier that orders them, or
// whose blocks count on one another, reads what it expects in one of the two orders only, so a
// test suite that passes in both has no such race where it looked.
enum class HostOrder { kForward, kReverse };
inline HostOrder HostOrderFromEnv() {
  const char* v = std::getenv("LMS_HOST_ORDER");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "forward") == 0) return HostOrder::kForward;
  if (std::strcmp(v, "reverse") == 0) return HostOrder::kReverse;
  std::fprintf(stderr, "cuda_host: LMS_HOST_ORDER is \"%s\"; it takes forward or reverse\n", v);
  std::exit(2);
}
struct HostState {
  HostOrder order = HostOrderFromEnv();
  void* main_sp = nullptr;
  std::vector<HostFiber> fibers;
  std::vector<std::unique_ptr<char[]>> stacks;  // kept between launches
  int current = -1;
  HostBarrier block;
  std::vector<HostBarrier> warps;
  std::vector<uint64_t> shuffle;   // [thread]
  std::vector<uint32_t> operands;  // mma operands: [thread][6]
  std::function<void()> body;
  long mma_count = 0;
  long launches = 0;
  long pdl_waits = 0;  // PdlWait calls in the running block
  long progress = 0;  // barrier arrivals and returns: a pass over the fibers without any is a deadlock
};
constexpr size_t kHostStackBytes = 1 << 16;
inline HostState g_host;
inline std::recursive_mutex g_host_launch_mutex;  // one launch at a time, over all threads
inline dim3 blockIdx, blockDim, gridDim;
inline uint16_t* g_host_smem = nullptr;
// Called after every launch with the kernel's name (the runtime checks its guard bytes).
inline void (*g_host_after_launch)(const char* kernel) = nullptr;
#define threadIdx (g_host.fibers[g_host.current].tid)

inline void HostYield() { lms_host_switch(&g_host.fibers[g_host.current].sp, g_host.main_sp); }
inline void HostWait(HostBarrier& b) {
  const long generation = b.generation;
  ++g_host.progress;
  if (++b.count == b.n) {
    b.count = 0;
    ++b.generation;
    return;
  }
  while (b.generation == generation) HostYield();
}
inline void __syncthreads() { HostWait(g_host.block); }
// gpu/ops/launch.cuh's PdlWait. Launches run one after another here, so the kernel before has
// always finished; what is checked is that a dependent launch's blocks wait at all (a kernel that
// never waits would race the kernel before it on a GPU).
#define LMS_CUDA_ON_HOST 1
inline void HostPdlWait() { ++g_host.pdl_waits; }
inline int HostThread() { return static_cast<int>(threadIdx.x); }
inline HostBarrier& HostWarpBarrier() { return g_host.warps[HostThread() / 32]; }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T x, int m) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles of up to 8 bytes");
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "cuda_host: partial shuffle masks are not emulated\n");
    std::abort();
  }
  const int i = HostThread(), w = i / 32, l = i % 32;
  std::memcpy(&g_host.shuffle[static_cast<size_t>(i)], &x, sizeof(T));
  HostWait(HostWarpBarrier());
  T r;
  std::memcpy(&r, &g_host.shuffle[static_cast<size_t>(w * 32 + (l ^ m))], sizeof(T));
  HostWait(HostWarpBarrier());
  return r;
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 of the calling thread's warp:
// A[r][k] is register (r ≥ 8) + 2·(k ≥ 8) of lane 4·(r % 8) + (k % 8) / 2, B[k][n] register
// 4 + (k ≥ 8) of lane 4·n + (k % 8) / 2, the odd k in the high half; C[r][n] of lane
// 4·(r % 8) + n / 2, element 2·(r ≥ 8) + n % 2. Products summed in double, then rounded.
inline void HostMma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1, bool half) {
  const int i = HostThread(), w = i / 32, lane = i % 32, g = lane / 4, t = lane % 4;
  uint32_t* mine = &g_host.operands[static_cast<size_t>(i) * 6];
  for (int j = 0; j < 4; ++j) mine[j] = a[j];
  mine[4] = b0;
  mine[5] = b1;
  if (lane == 0) ++g_host.mma_count;
  HostWait(HostWarpBarrier());
  auto value = [half](uint32_t reg, int k) {
    const uint16_t u = (k & 1) ? static_cast<uint16_t>(reg >> 16) : static_cast<uint16_t>(reg & 0xffffu);
    return half ? static_cast<double>(HostFromHalf(u)) : static_cast<double>(HostFromBf16(u));
  };
  auto A = [&](int r, int k) {
    const int reg = (r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
    return value(g_host.operands[static_cast<size_t>(w * 32 + (r % 8) * 4 + (k % 8) / 2) * 6 + reg], k);
  };
  auto B = [&](int k, int n) {
    const int reg = 4 + (k >= 8 ? 1 : 0);
    return value(g_host.operands[static_cast<size_t>(w * 32 + n * 4 + (k % 8) / 2) * 6 + reg], k);
  };
  float d[4];
  for (int e = 0; e < 4; ++e) {
    const int r = g + (e >= 2 ? 8 : 0), n = 2 * t + (e & 1);
    double s = 0.0;
    for (int k = 0; k < 16; ++k) s += A(r, k) * B(k, n);
    d[e] = static_cast<float>(s + static_cast<double>(c[e]));
  }
  HostWait(HostWarpBarrier());  // every lane has read the operands before any is overwritten
  for (int e = 0; e < 4; ++e) c[e] = d[e];
}

struct HostLaunchConfig {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  bool dependent = false;  // cudaLaunchAttributeProgrammaticStreamSerialization
  HostLaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};
// The launch being run, by the name it has at its <<<…>>> (set by the patched source).
inline thread_local const char* g_host_kernel_name = "a kernel";

// A fiber's first frame: runs the kernel body for its thread, then returns to the scheduler for
// good.
[[noreturn]] inline void HostEntry() {
  g_host.body();
  ++g_host.progress;
  g_host.fibers[g_host.current].done = true;
  HostYield();
  std::abort();  // never resumed
}

// A new fiber's stack: six zeroed callee-saved registers for lms_host_switch to pop, then
// HostEntry as its return address, the stack pointer then 8 mod 16 as at any function's entry.
inline void* HostNewStack(char* stack) {
  uintptr_t top = reinterpret_cast<uintptr_t>(stack + kHostStackBytes) & ~uintptr_t{15};
  auto* sp = reinterpret_cast<uintptr_t*>(top);
  *--sp = 0;  // HostEntry's own return address: never used
  *--sp = reinterpret_cast<uintptr_t>(&HostEntry);
  for (int i = 0; i < 6; ++i) *--sp = 0;
  return sp;
}

// What the driver would refuse of a launch of `kernel` with `cfg`, or cudaSuccess.
inline cudaError_t HostCheckLaunch(const HostLaunchConfig& cfg, const void* kernel) {
  const uint64_t threads = uint64_t{cfg.block.x} * cfg.block.y * cfg.block.z;
  if (threads == 0 || threads > 1024 || cfg.block.z > 64) return cudaErrorInvalidConfiguration;
  if (cfg.grid.x == 0 || cfg.grid.y == 0 || cfg.grid.z == 0 || cfg.grid.x > 2147483647u || cfg.grid.y > 65535u ||
      cfg.grid.z > 65535u) {
    return cudaErrorInvalidConfiguration;
  }
  if (cfg.stream != nullptr && cfg.stream->device != g_host_device) return cudaErrorInvalidResourceHandle;
  if (cfg.smem > kHostDefaultSmem) {
    std::lock_guard<std::mutex> lock(g_host_attr_mutex);
    auto it = g_host_smem_optin.find(kernel);
    if (it == g_host_smem_optin.end() || it->second < cfg.smem) return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

// Runs every block of the grid, each block's threads as fibers until all have returned.
template <class K, class... A>
void HostRunKernel(const HostLaunchConfig& cfg, const char* name, K kernel, A... args);

// A <<<…>>> launch: refused at once if the driver would refuse it, else recorded into the
// capturing graph or handed to the stream, with its arguments by value.
template <class K, class... A>
void HostLaunch(HostLaunchConfig cfg, K kernel, A... args) {
  const void* kernel_id = reinterpret_cast<const void*>(kernel);
  const char* name = g_host_kernel_name;
  g_host_kernel_name = "a kernel";
  if (const cudaError_t e = HostCheckLaunch(cfg, kernel_id); e != cudaSuccess) {
    std::fprintf(stderr, "cuda_host: launch of %s refused (error %d): grid %u,%u,%u block %u, %zu bytes of shared memory\n",
                 name, e, cfg.grid.x, cfg.grid.y, cfg.grid.z, cfg.block.x, cfg.smem);
    g_host_launch_error = e;
    return;
  }
  auto check = [name](const auto& arg) {
    using T = std::decay_t<decltype(arg)>;
    if constexpr (std::is_pointer_v<T>) HostCheckKernelPointer(name, static_cast<const void*>(arg), g_host_device);
  };
  (check(args), ...);
  std::function<void()> work = [cfg, name, kernel, args...] { HostRunKernel(cfg, name, kernel, args...); };
  if (cfg.stream != nullptr && cfg.stream->capture != nullptr) {
    cfg.stream->capture->push_back(std::move(work));
  } else {
    HostSubmit(cfg.stream, std::move(work));
  }
}

template <class K, class... A>
void HostRunKernel(const HostLaunchConfig& cfg, const char* name, K kernel, A... args) {
  const int n = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  if (cfg.block.y != 1 || cfg.block.z != 1 || n % 32 != 0) {
    std::fprintf(stderr, "cuda_host: blocks must be one-dimensional whole warps\n");
    std::abort();
  }
  std::lock_guard<std::recursive_mutex> lock(g_host_launch_mutex);
  ++g_host.launches;
  std::vector<uint16_t> smem(cfg.smem / 2 + 16);
  gridDim = cfg.grid;
  blockDim = cfg.block;
  g_host.body = [&] { kernel(args...); };
  while (g_host.stacks.size() < static_cast<size_t>(n)) g_host.stacks.emplace_back(new char[kHostStackBytes]);
  const bool reverse = g_host.order == HostOrder::kReverse;
  const uint64_t blocks = uint64_t{cfg.grid.x} * cfg.grid.y * cfg.grid.z;
  for (uint64_t k = 0; k < blocks; ++k) {
    const uint64_t b = reverse ? blocks - 1 - k : k;
    const auto bx = static_cast<unsigned>(b % cfg.grid.x), by = static_cast<unsigned>(b / cfg.grid.x % cfg.grid.y),
               bz = static_cast<unsigned>(b / cfg.grid.x / cfg.grid.y);
    blockIdx = dim3(bx, by, bz);
    std::fill(smem.begin(), smem.end(), uint16_t{0x7fff});  // NaN as f16 and as bf16
    g_host_smem = smem.data();
    g_host.fibers.assign(static_cast<size_t>(n), HostFiber());
    g_host.pdl_waits = 0;
    g_host.block = HostBarrier{n, 0, 0};
    g_host.warps.assign(static_cast<size_t>(n / 32), HostBarrier{32, 0, 0});
    g_host.shuffle.assign(static_cast<size_t>(n), 0u);
    g_host.operands.assign(static_cast<size_t>(n) * 6, 0u);
    for (int i = 0; i < n; ++i) {
      HostFiber& f = g_host.fibers[static_cast<size_t>(i)];
      f.tid = dim3(static_cast<unsigned>(i), 0, 0);
      f.sp = HostNewStack(g_host.stacks[static_cast<size_t>(i)].get());
    }
    for (int alive = n; alive > 0;) {
      alive = 0;
      const long progress = g_host.progress;
      for (int j = 0; j < n; ++j) {
        const int i = reverse ? n - 1 - j : j;
        if (g_host.fibers[static_cast<size_t>(i)].done) continue;
        g_host.current = i;
        lms_host_switch(&g_host.main_sp, g_host.fibers[static_cast<size_t>(i)].sp);
        if (!g_host.fibers[static_cast<size_t>(i)].done) ++alive;
      }
      if (alive > 0 && g_host.progress == progress) {
        std::fprintf(stderr, "cuda_host: block (%u,%u,%u): %d threads wait at a barrier that the others never reach\n",
                     bx, by, bz, alive);
        std::abort();
      }
    }
    g_host.current = -1;
    if (cfg.dependent && g_host.pdl_waits == 0) {
      std::fprintf(stderr, "cuda_host: %s, launched as a programmatic dependent launch, has a block (%u,%u,%u) "
                   "none of whose threads waits for the kernel before it (PdlWait)\n", name, bx, by, bz);
      std::abort();
    }
  }
  g_host_smem = nullptr;
  if (g_host_after_launch) g_host_after_launch(name);
}
