// Rotary embedding in place, one thread per rotated pair, with core's MakeRopeTable tables; the
// tensor in fp32 or bf16 (rotated in fp32, rounded back).
#include <cuda_bf16.h>

#include "gpu/op_times.h"
#include "gpu/train/element_access.cuh"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;

template <typename E>
__global__ void RopeKernel(E* x, const float* cos_t, const float* sin_t, int64_t T, int64_t H, int64_t hd,
                           int64_t ld, bool neox, float sign, int64_t pairs) {
  const int64_t half = hd / 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < pairs; idx += stride) {
    const int64_t i = idx % half, rh = idx / half;  // rh = row·H + head
    const int64_t t = (rh / H) % T;
    E* v = x + (rh / H) * ld + (rh % H) * hd;
    const int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float c = cos_t[t * half + i], s = sign * sin_t[t * half + i];
    const float x0 = Ld(v, a), x1 = Ld(v, b);
    St(v, a, x0 * c - x1 * s);
    St(v, b, x0 * s + x1 * c);
  }
}

}  // namespace

Status TrainKernels::Rope(Output x, const float* cos, const float* sin, int64_t B, int64_t T, int64_t H, int64_t hd,
                          bool neox, bool inverse, int64_t ld) {
  OpScope op_scope(impl_->times.get(), "rope", impl_->stream);
  const int64_t pairs = B * T * H * (hd / 2);
  if (pairs <= 0) return Status::Ok();
  if ((x.f32 == nullptr) == (x.bf16 == nullptr)) return Status::InvalidArgument("Rope: one tensor, fp32 or bf16");
  if (ld == 0) ld = H * hd;
  if (ld < H * hd) return Status::InvalidArgument("Rope: rows closer than their heads");
  const int64_t blocks = (pairs + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  const float sign = inverse ? -1.0f : 1.0f;
  if (x.bf16) {
    RopeKernel<__nv_bfloat16><<<grid, kThreads, 0, impl_->stream>>>(static_cast<__nv_bfloat16*>(x.bf16), cos, sin, T,
                                                                     H, hd, ld, neox, sign, pairs);
  } else {
    RopeKernel<float><<<grid, kThreads, 0, impl_->stream>>>(x.f32, cos, sin, T, H, hd, ld, neox, sign, pairs);
  }
  return LaunchStatus(cudaGetLastError(), "Rope");
}

}  // namespace lms::gpu::train
