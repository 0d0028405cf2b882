// Runs CUDA kernel source on the CPU, for tests on machines without a GPU. Each CUDA thread of a
// block is a ucontext fiber on one OS thread; __syncthreads and warp shuffles are barriers over
// those fibers; mma.sync m16n8k16 (f16 or bf16 operands, fp32 accumulation) is computed from the
// 32 lanes' registers with the PTX ISA's fragment layouts. Blocks run one after another. Dynamic
// shared memory starts as NaN in both 16-bit formats, so a read of anything unwritten shows in
// the results. Only what the tiled attention kernels use is here.
//
// The kernels are compiled from their own source after patch_kernels.py has replaced what a C++
// compiler cannot take: the mma asm (by HostMma), the extern __shared__ array (by g_host_smem)
// and <<<…>>> launches (by HostLaunch).
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#define __device__
#define __global__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  uint32_t x, y;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint2 make_uint2(uint32_t a, uint32_t b) { return {a, b}; }

using cudaError_t = int;
using cudaStream_t = void*;
constexpr int cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaFuncAttributeMaxDynamicSharedMemorySize = 8;
template <class K>
inline cudaError_t cudaFuncSetAttribute(K, int, int) {
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

// 16-bit floats: f16 through the compiler's _Float16, bf16 by rounding to nearest even.
struct __half {
  uint16_t x;
};
struct __half2 {
  uint16_t x, y;
};
struct __nv_bfloat16 {
  uint16_t x;
};
struct __nv_bfloat162 {
  uint16_t x, y;
};
inline uint16_t HostToHalf(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
inline float HostFromHalf(uint16_t u) {
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}
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
inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 b) { return b.x; }

// ---- threads as fibers
struct HostFiber {
  ucontext_t ctx;
  dim3 tid;
  bool done = false;
  std::vector<char> stack;
};
struct HostBarrier {
  int n = 0, count = 0;
  long generation = 0;
};
struct HostState {
  ucontext_t main;
  std::vector<HostFiber> fibers;
  int current = -1;
  HostBarrier block;
  std::vector<HostBarrier> warps;
  std::vector<float> shuffle;      // [thread]
  std::vector<uint32_t> operands;  // mma operands: [thread][6]
  std::function<void()> body;
  long mma_count = 0;
};
inline HostState g_host;
inline dim3 blockIdx, blockDim, gridDim;
inline uint16_t* g_host_smem = nullptr;
#define threadIdx (g_host.fibers[g_host.current].tid)

inline void HostYield() { swapcontext(&g_host.fibers[g_host.current].ctx, &g_host.main); }
inline void HostWait(HostBarrier& b) {
  const long generation = b.generation;
  if (++b.count == b.n) {
    b.count = 0;
    ++b.generation;
    return;
  }
  while (b.generation == generation) HostYield();
}
inline void __syncthreads() { HostWait(g_host.block); }
inline int HostThread() { return static_cast<int>(threadIdx.x); }
inline HostBarrier& HostWarpBarrier() { return g_host.warps[HostThread() / 32]; }

inline float __shfl_xor_sync(unsigned mask, float x, int m) {
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "cuda_host: partial shuffle masks are not emulated\n");
    std::abort();
  }
  const int i = HostThread(), w = i / 32, l = i % 32;
  g_host.shuffle[i] = x;
  HostWait(HostWarpBarrier());
  const float r = g_host.shuffle[w * 32 + (l ^ m)];
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
  HostLaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t = nullptr) : grid(g), block(b), smem(s) {}
};

inline void HostEntry() {
  g_host.body();
  g_host.fibers[g_host.current].done = true;
  swapcontext(&g_host.fibers[g_host.current].ctx, &g_host.main);
}

// Runs every block of the grid, each block's threads as fibers until all have returned.
template <class K, class... A>
void HostLaunch(HostLaunchConfig cfg, K kernel, A... args) {
  const int n = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  if (cfg.block.y != 1 || cfg.block.z != 1 || n % 32 != 0) {
    std::fprintf(stderr, "cuda_host: blocks must be one-dimensional whole warps\n");
    std::abort();
  }
  std::vector<uint16_t> smem(cfg.smem / 2 + 16);
  gridDim = cfg.grid;
  blockDim = cfg.block;
  g_host.body = [&] { kernel(args...); };
  for (unsigned bz = 0; bz < cfg.grid.z; ++bz) {
    for (unsigned by = 0; by < cfg.grid.y; ++by) {
      for (unsigned bx = 0; bx < cfg.grid.x; ++bx) {
        blockIdx = dim3(bx, by, bz);
        std::fill(smem.begin(), smem.end(), uint16_t{0x7fff});  // NaN as f16 and as bf16
        g_host_smem = smem.data();
        g_host.fibers.assign(static_cast<size_t>(n), HostFiber());
        g_host.block = HostBarrier{n, 0, 0};
        g_host.warps.assign(static_cast<size_t>(n / 32), HostBarrier{32, 0, 0});
        g_host.shuffle.assign(static_cast<size_t>(n), 0.0f);
        g_host.operands.assign(static_cast<size_t>(n) * 6, 0u);
        for (int i = 0; i < n; ++i) {
          HostFiber& f = g_host.fibers[static_cast<size_t>(i)];
          f.tid = dim3(static_cast<unsigned>(i), 0, 0);
          f.stack.resize(1 << 16);
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = nullptr;
          makecontext(&f.ctx, HostEntry, 0);
        }
        for (int alive = n; alive > 0;) {
          alive = 0;
          for (int i = 0; i < n; ++i) {
            if (g_host.fibers[static_cast<size_t>(i)].done) continue;
            g_host.current = i;
            swapcontext(&g_host.main, &g_host.fibers[static_cast<size_t>(i)].ctx);
            if (!g_host.fibers[static_cast<size_t>(i)].done) ++alive;
          }
        }
        g_host.current = -1;
      }
    }
  }
}
