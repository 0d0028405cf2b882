// SwiGLU forward/backward and the residual add: element-wise, the CPU's float formulas.
#include <cuda_bf16.h>

#include "gpu/op_times.h"
#include "gpu/train/element_access.cuh"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

constexpr int kThreads = 256;

unsigned GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

// A thread's grid-stride walk over elements i = first, first + stride, … < n of a (·, cols)
// tensor whose rows lie ld apart (cols 0: contiguous), giving each one's offset: the row and
// column advance by addition, so a thread divides twice in all, not once per element.
struct RowWalk {
  int64_t row, col, cols, ld, drow, dcol;
  __device__ RowWalk(int64_t first, int64_t stride, int64_t n, RowLayout l) {
    cols = l.cols ? l.cols : (n > 0 ? n : 1);
    ld = l.cols ? l.ld : cols;
    row = first / cols;
    col = first % cols;
    drow = stride / cols;
    dcol = stride % cols;
  }
  __device__ int64_t at() const { return row * ld + col; }
  __device__ void next() {
    row += drow;
    col += dcol;
    if (col >= cols) {
      col -= cols;
      ++row;
    }
  }
};

// out (fp32) and out16 (bf16): either may be null. TG: gate and up in fp32 or bf16, laid out as l.
template <typename TG>
__global__ void SwiGluForwardKernel(float* out, __nv_bfloat16* out16, const TG* gate, const TG* up, int64_t n,
                                    RowLayout l) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  RowWalk w(first, stride, n, l);
  for (int64_t i = first; i < n; i += stride, w.next()) {
    const int64_t j = w.at();
    const float g = Ld(gate, j);
    const float y = g / (1.0f + expf(-g)) * Ld(up, j);
    if (out) out[i] = y;
    if (out16) out16[i] = __float2bfloat16_rn(y);
  }
}

// dgate, dup in fp32 or (dgate16, dup16) in bf16, laid out as gate and up (l). TD: dout's type
// (contiguous), TG: gate's and up's.
template <typename TD, typename TG>
__global__ void SwiGluBackwardKernel(float* dgate, float* dup, __nv_bfloat16* dgate16, __nv_bfloat16* dup16,
                                     const TD* dout, const TG* gate, const TG* up, int64_t n, RowLayout l) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  RowWalk w(first, stride, n, l);
  for (int64_t i = first; i < n; i += stride, w.next()) {
    const int64_t j = w.at();
    const float g = Ld(gate, j), d = Ld(dout, i), sig = 1.0f / (1.0f + expf(-g));
    const float u = Ld(up, j);  // read before the writes: dup may alias up
    const float du = d * g * sig;
    // d silu(g)/dg = σ(g) (1 + g (1 − σ(g)))
    const float dg = d * u * sig * (1.0f + g * (1.0f - sig));
    if (dup16) {
      dup16[j] = __float2bfloat16_rn(du);
      dgate16[j] = __float2bfloat16_rn(dg);
    } else {
      dup[j] = du;
      dgate[j] = dg;
    }
  }
}

template <typename TD, typename TG>
void LaunchSwiGluBackward(float* dgate, float* dup, __nv_bfloat16* dgate16, __nv_bfloat16* dup16, const void* dout,
                          const void* gate, const void* up, int64_t n, RowLayout l, cudaStream_t s) {
  SwiGluBackwardKernel<TD, TG><<<GridFor(n), kThreads, 0, s>>>(dgate, dup, dgate16, dup16,
                                                               static_cast<const TD*>(dout),
                                                               static_cast<const TG*>(gate),
                                                               static_cast<const TG*>(up), n, l);
}

// gate and up of one type: whether they are bf16, or an error.
Status GateUpType(Activation gate, Activation up, bool* bf16) {
  const bool ok = (gate.f32 && up.f32 && !gate.bf16 && !up.bf16) || (gate.bf16 && up.bf16 && !gate.f32 && !up.f32);
  if (!ok) return Status::InvalidArgument("SwiGLU: gate and up both in fp32 or both in bf16");
  *bf16 = gate.bf16 != nullptr;
  return Status::Ok();
}

template <typename TY>
__global__ void AddKernel(float* out, const float* x, const TY* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    out[i] = x[i] + Ld(y, i);
  }
}

Status CheckLayout(RowLayout l, int64_t n) {
  if (l.cols < 0 || (l.cols > 0 && (l.ld < l.cols || n % l.cols != 0))) {
    return Status::InvalidArgument("SwiGLU: rows of cols elements, ld >= cols apart, whole rows");
  }
  return Status::Ok();
}

}  // namespace

Status TrainKernels::SwiGluForward(float* out, Activation gate, Activation up, int64_t n, void* out16, RowLayout l) {
  OpScope op_scope(impl_->times.get(), "swiglu fwd", impl_->stream);
  bool bf16 = false;
  LMS_RETURN_IF_ERROR(GateUpType(gate, up, &bf16));
  LMS_RETURN_IF_ERROR(CheckLayout(l, n));
  if (n <= 0) return Status::Ok();
  auto* o16 = static_cast<__nv_bfloat16*>(out16);
  if (bf16) {
    SwiGluForwardKernel<__nv_bfloat16><<<GridFor(n), kThreads, 0, impl_->stream>>>(
        out, o16, static_cast<const __nv_bfloat16*>(gate.bf16), static_cast<const __nv_bfloat16*>(up.bf16), n, l);
  } else {
    SwiGluForwardKernel<float><<<GridFor(n), kThreads, 0, impl_->stream>>>(out, o16, gate.f32, up.f32, n, l);
  }
  return LaunchStatus(cudaGetLastError(), "SwiGluForward");
}

Status TrainKernels::SwiGluBackward(float* dgate, float* dup, Activation dout, Activation gate, Activation up,
                                    int64_t n, void* dgate16, void* dup16, RowLayout l) {
  OpScope op_scope(impl_->times.get(), "swiglu bwd", impl_->stream);
  bool bf16 = false;
  LMS_RETURN_IF_ERROR(GateUpType(gate, up, &bf16));
  LMS_RETURN_IF_ERROR(CheckLayout(l, n));
  if ((dout.f32 == nullptr) == (dout.bf16 == nullptr)) return Status::InvalidArgument("SwiGluBackward: one dout");
  if (n <= 0) return Status::Ok();
  if ((dgate16 == nullptr) != (dup16 == nullptr)) return Status::InvalidArgument("SwiGluBackward: both in bf16 or neither");
  auto* dg16 = static_cast<__nv_bfloat16*>(dgate16);
  auto* du16 = static_cast<__nv_bfloat16*>(dup16);
  const cudaStream_t s = impl_->stream;
  const void* g = bf16 ? gate.bf16 : static_cast<const void*>(gate.f32);
  const void* u = bf16 ? up.bf16 : static_cast<const void*>(up.f32);
  if (dout.bf16) {
    if (bf16) LaunchSwiGluBackward<__nv_bfloat16, __nv_bfloat16>(dgate, dup, dg16, du16, dout.bf16, g, u, n, l, s);
    else LaunchSwiGluBackward<__nv_bfloat16, float>(dgate, dup, dg16, du16, dout.bf16, g, u, n, l, s);
  } else {
    if (bf16) LaunchSwiGluBackward<float, __nv_bfloat16>(dgate, dup, dg16, du16, dout.f32, g, u, n, l, s);
    else LaunchSwiGluBackward<float, float>(dgate, dup, dg16, du16, dout.f32, g, u, n, l, s);
  }
  return LaunchStatus(cudaGetLastError(), "SwiGluBackward");
}

Status TrainKernels::Add(float* out, const float* x, Activation y, int64_t n) {
  OpScope op_scope(impl_->times.get(), "add", impl_->stream);
  if (n <= 0) return Status::Ok();
  if ((y.f32 == nullptr) == (y.bf16 == nullptr)) return Status::InvalidArgument("Add: one addend, fp32 or bf16");
  if (y.bf16) {
    AddKernel<__nv_bfloat16><<<GridFor(n), kThreads, 0, impl_->stream>>>(
        out, x, static_cast<const __nv_bfloat16*>(y.bf16), n);
  } else {
    AddKernel<float><<<GridFor(n), kThreads, 0, impl_->stream>>>(out, x, y.f32, n);
  }
  return LaunchStatus(cudaGetLastError(), "Add");
}

}  // namespace lms::gpu::train
