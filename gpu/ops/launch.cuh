// Kernel launches that may overlap the kernel before them on the stream (Hopper's programmatic
// dependent launch). A decode step is a chain of short kernels, each of which waits for the one
// before it: by default a kernel's blocks start only once the previous kernel has finished and
// its writes are flushed, so every boundary costs the launch latency and the previous kernel's
// tail. Launched through LaunchKernel while dependent launches are on, a kernel may start as soon
// as every block of the kernel before it has begun (they call PdlLaunchDependents first); it
// runs what does not depend on earlier kernels (the mat-vec kernels start reading their weights),
// then PdlWait() holds it until the kernel before has finished and its memory is visible.
//
// The rule for a kernel launched through LaunchKernel: before PdlWait() it reads nothing another
// kernel writes (only weights and its arguments) and writes nothing at all. PdlWait() is a no-op
// for a kernel launched the ordinary way, so the same kernel serves both. Off by default
// (SetDependentLaunches: the CUDA backend sets it for a card of compute capability 9.0 or later
// when asked).
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "gpu/ops/ops.h"  // SetDependentLaunches, DependentLaunches (launch.cu)

namespace lms::gpu {

// Lets the next kernel on the stream begin (once every block of this one has called it).
__device__ __forceinline__ void PdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaTriggerProgrammaticLaunchCompletion();
#endif
}
// Waits until the kernel before this one on the stream has finished and its writes are visible.
__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cudaGridDependencySynchronize();
#elif defined(LMS_CUDA_ON_HOST)
  HostPdlWait();
#endif
}
// The start of a kernel that does nothing before it needs the kernel before: both of the above.
__device__ __forceinline__ void PdlStart() {
  PdlLaunchDependents();
  PdlWait();
}

// Launches kernel(args...) on grid × block threads with smem bytes of dynamic shared memory on
// s, as a dependent launch when those are on. `name` names the kernel in the host emulation's
// messages.
template <class... P, class... A>
cudaError_t LaunchKernel(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                         A&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1] = {};
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  if (DependentLaunches()) {
    cfg.attrs = attr;
    cfg.numAttrs = 1;
  }
#ifdef LMS_CUDA_ON_HOST
  g_host_kernel_name = name;
#else
  (void)name;
#endif
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
  const cudaError_t last = cudaGetLastError();  // as after a plain launch: nothing left pending
  return e != cudaSuccess ? e : last;
}

}  // namespace lms::gpu
