// SwiGLU forward/backward and the residual add: element-wise, the CPU's float formulas.
#include <cuda_bf16.h>

#include "gpu/op_times.h"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;

unsigned GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

// out (fp32) and out16 (bf16): either may be null.
__global__ void SwiGluForwardKernel(float* out, __nv_bfloat16* out16, const float* gate, const float* up, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const float g = gate[i];
    const float y = g / (1.0f + expf(-g)) * up[i];
    if (out) out[i] = y;
    if (out16) out16[i] = __float2bfloat16_rn(y);
  }
}

// dgate, dup in fp32 or (dgate16, dup16) in bf16.
__global__ void SwiGluBackwardKernel(float* dgate, float* dup, __nv_bfloat16* dgate16, __nv_bfloat16* dup16,
                                     const float* dout, const float* gate, const float* up, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const float g = gate[i], d = dout[i], sig = 1.0f / (1.0f + expf(-g));
    const float u = up[i];  // read before the writes: dup may alias up
    const float du = d * g * sig;
    // d silu(g)/dg = σ(g) (1 + g (1 − σ(g)))
    const float dg = d * u * sig * (1.0f + g * (1.0f - sig));
    if (dup16) {
      dup16[i] = __float2bfloat16_rn(du);
      dgate16[i] = __float2bfloat16_rn(dg);
    } else {
      dup[i] = du;
      dgate[i] = dg;
    }
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) x[i] += y[i];
}

}  // namespace

Status TrainKernels::SwiGluForward(float* out, const float* gate, const float* up, int64_t n, void* out16) {
  OpScope op_scope(impl_->times.get(), "swiglu fwd", impl_->stream);
  if (n <= 0) return Status::Ok();
  SwiGluForwardKernel<<<GridFor(n), kThreads, 0, impl_->stream>>>(out, static_cast<__nv_bfloat16*>(out16), gate, up,
                                                                    n);
  return LaunchStatus(cudaGetLastError(), "SwiGluForward");
}

Status TrainKernels::SwiGluBackward(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                                    int64_t n, void* dgate16, void* dup16) {
  OpScope op_scope(impl_->times.get(), "swiglu bwd", impl_->stream);
  if (n <= 0) return Status::Ok();
  if ((dgate16 == nullptr) != (dup16 == nullptr)) return Status::InvalidArgument("SwiGluBackward: both in bf16 or neither");
  SwiGluBackwardKernel<<<GridFor(n), kThreads, 0, impl_->stream>>>(
      dgate, dup, static_cast<__nv_bfloat16*>(dgate16), static_cast<__nv_bfloat16*>(dup16), dout, gate, up, n);
  return LaunchStatus(cudaGetLastError(), "SwiGluBackward");
}

Status TrainKernels::Add(float* x, const float* y, int64_t n) {
  OpScope op_scope(impl_->times.get(), "add", impl_->stream);
  if (n <= 0) return Status::Ok();
  AddKernel<<<GridFor(n), kThreads, 0, impl_->stream>>>(x, y, n);
  return LaunchStatus(cudaGetLastError(), "Add");
}

}  // namespace lms::gpu::train
