// Linear layers on cuBLAS. Our matrices are row-major; cuBLAS is column-major, and a row-major
// (R, C) matrix with row stride ld is, read column-major, the (C, R) matrix Xᵀ with the same ld.
// So each row-major product Y = A·B is computed as the column-major Yᵀ = Bᵀ·Aᵀ:
//   forward   out (BT,N) = inp (BT,K) · w (N,K)ᵀ  →  outᵀ (N×BT) = w · inpᵀ
//             w read column-major is wᵀ (K×N, ld K): op T; inp read is inpᵀ (K×BT, ld K): op N.
//   dinp      dinp (BT,K) += dout (BT,N) · w (N,K)  →  dinpᵀ (K×BT) = wᵀ · doutᵀ
//             w read is wᵀ (K×N, ld K): op N; dout read is doutᵀ (N×BT, ld N): op N.
//   dw        dw (N,K) += dout (BT,N)ᵀ · inp (BT,K)  →  dwᵀ (K×N) = inpᵀ · dout
//             inp read is inpᵀ (K×BT, ld K): op N; dout read is doutᵀ (N×BT, ld N): op T.
#include "gpu/op_times.h"
#include "gpu/train/train_kernels.h"
#include "gpu/cuda_check.h"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

// The bf16 backward products with g = dout in bf16 (BT, N); dinp gets beta·dinp + ….
Status BackwardBf16(TrainKernels::Impl& d, Output dinp, float* dw, const void* g, Activation inp, Weight w,
                    int64_t BT, int64_t K, int64_t N, float beta) {
  if (dinp.f32 || dinp.bf16) {
    const void* wb = w.bf16;
    if (!wb) LMS_RETURN_IF_ERROR(d.ConvertToBf16(d.bf16_w, w.f32, N * K, &wb));
    LMS_RETURN_IF_ERROR(d.Gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, BT, N, wb, K, g, N, dinp, K, beta, true));
  }
  const void* a = nullptr;
  LMS_RETURN_IF_ERROR(d.InputToBf16(d.bf16_a, inp, BT * K, &a));
  return d.Gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, BT, a, K, g, N, dw, K, 1.0f, true);
}

// kF32 multiplies the fp32 operands themselves; one given in bf16 alone has none.
Status NeedF32(const Activation& a) {
  if (a.f32 == nullptr) return Status::InvalidArgument("fp32 products need fp32 operands");
  return Status::Ok();
}

// Zeroes an output of n elements (a product with nothing to sum).
Status Zero(TrainKernels::Impl& d, Output out, int64_t n) {
  void* p = out.bf16 ? out.bf16 : static_cast<void*>(out.f32);
  const size_t bytes = static_cast<size_t>(n) * (out.bf16 ? 2 : sizeof(float));
  return CudaStatus(cudaMemsetAsync(p, 0, bytes, d.stream), "cudaMemsetAsync");
}

// A bf16 output is for kBF16 alone; exactly one output unless it may be absent.
Status CheckOutput(const TrainKernels::Impl& d, Output out, bool optional) {
  if (out.f32 && out.bf16) return Status::InvalidArgument("a product writes one output, fp32 or bf16");
  if (!optional && !out.f32 && !out.bf16) return Status::InvalidArgument("a product without its output");
  if (out.bf16 && d.precision != GemmPrecision::kBF16) {
    return Status::InvalidArgument("bf16 product outputs need bf16 precision");
  }
  return Status::Ok();
}

}  // namespace

Status TrainKernels::MatMulForward(float* out, const float* inp, Weight w, int64_t BT, int64_t K, int64_t N) {
  return MatMulForward(out, Activation{inp, nullptr}, w, BT, K, N);
}

Status TrainKernels::MatMulForward(Output out, Activation inp, Weight w, int64_t BT, int64_t K, int64_t N) {
  OpScope op_scope(impl_->times.get(), "matmul fwd", impl_->stream);
  Impl& d = *impl_;
  LMS_RETURN_IF_ERROR(CheckOutput(d, out, false));
  if (BT <= 0 || N <= 0) return Status::Ok();
  if (K <= 0) return Zero(d, out, BT * N);
  if (d.precision == GemmPrecision::kF32) {
    LMS_RETURN_IF_ERROR(NeedF32(inp));
    return d.Gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, BT, K, w.f32, K, inp.f32, K, out, N, 0.0f, false);
  }
  const void* a = nullptr;
  const void* wb = w.bf16;
  LMS_RETURN_IF_ERROR(d.InputToBf16(d.bf16_a, inp, BT * K, &a));
  if (!wb) LMS_RETURN_IF_ERROR(d.ConvertToBf16(d.bf16_w, w.f32, N * K, &wb));
  return d.Gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, BT, K, wb, K, a, K, out, N, 0.0f, true);
}

Status TrainKernels::MatMulBackward(float* dinp, float* dw, const float* dout, const float* inp, Weight w,
                                    int64_t BT, int64_t K, int64_t N) {
  return MatMulBackward(dinp, dw, Activation{dout, nullptr}, Activation{inp, nullptr}, w, BT, K, N, true);
}

Status TrainKernels::MatMulBackward(Output dinp, float* dw, Activation dout, Activation inp, Weight w, int64_t BT,
                                    int64_t K, int64_t N, bool accumulate) {
  OpScope op_scope(impl_->times.get(), "matmul bwd", impl_->stream);
  Impl& d = *impl_;
  LMS_RETURN_IF_ERROR(CheckOutput(d, dinp, true));
  if (dinp.bf16 && accumulate) return Status::InvalidArgument("a bf16 dinp is overwritten, not added to");
  const bool has_dinp = dinp.f32 || dinp.bf16;
  if (BT <= 0 || K <= 0) return Status::Ok();
  if (N <= 0) {  // an empty product: an overwritten dinp is zero
    if (accumulate || !has_dinp) return Status::Ok();
    return Zero(d, dinp, BT * K);
  }
  const float beta = accumulate ? 1.0f : 0.0f;
  if (d.precision == GemmPrecision::kF32) {
    LMS_RETURN_IF_ERROR(NeedF32(inp));
    LMS_RETURN_IF_ERROR(NeedF32(dout));
    if (has_dinp) {
      LMS_RETURN_IF_ERROR(d.Gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, BT, N, w.f32, K, dout.f32, N, dinp, K, beta, false));
    }
    return d.Gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, BT, inp.f32, K, dout.f32, N, dw, K, 1.0f, false);
  }
  const void* g = nullptr;
  LMS_RETURN_IF_ERROR(d.InputToBf16(d.bf16_b, dout, BT * N, &g));
  return BackwardBf16(d, dinp, dw, g, inp, w, BT, K, N, beta);
}

}  // namespace lms::gpu::train
