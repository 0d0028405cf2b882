// TrainKernels: creation, the scratch buffers and the cuBLAS plumbing shared by the ops.
#include "gpu/op_times.h"
#include "gpu/train/train_kernels.h"

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <utility>

#include "gpu/cuda_check.h"
#include "gpu/train/train_kernels_impl.h"

namespace lms::gpu::train {
namespace {

bool FitsInt(std::initializer_list<int64_t> v) {
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x >= 0 && x <= INT_MAX; });
}

}  // namespace

Status LaunchStatus(cudaError_t e, const char* what) { return CudaStatus(e, what); }

const char* GemmPrecisionName(GemmPrecision p) {
  switch (p) {
    case GemmPrecision::kF32:
      return "f32";
    case GemmPrecision::kBF16:
      return "bf16";
  }
  return "?";
}

TrainKernels::Impl::~Impl() {
  for (DeviceScratch* s : {&bf16_a, &bf16_b, &bf16_w, &partials, &row_loss, &ptrs, &att_grad, &row_dot, &csr}) {
    if (s->p) cudaFreeAsync(s->p, stream);
  }
  cudaStreamSynchronize(stream);  // the pinned CSR may still be read by a pending copy
  if (csr_host) cudaFreeHost(csr_host);
  if (csr_uploaded) cudaEventDestroy(csr_uploaded);
  if (cublas) cublasDestroy(cublas);
}

Status TrainKernels::Impl::Reserve(DeviceScratch& s, size_t bytes) {
  if (bytes <= s.bytes) return Status::Ok();
  if (s.p) {
    // Stream-ordered: earlier work on the stream that reads the old buffer finishes first.
    LMS_CUDA_RETURN_IF_ERROR(cudaFreeAsync(s.p, stream));
    s.p = nullptr;
    s.bytes = 0;
  }
  const size_t want = (bytes + 255) / 256 * 256;
  LMS_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&s.p, want, stream));
  s.bytes = want;
  return Status::Ok();
}

Status TrainKernels::Impl::ReserveHost(size_t bytes) {
  // The previous upload must have read the staging buffer before it is rewritten or freed.
  LMS_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(csr_uploaded));
  if (bytes <= csr_host_bytes) return Status::Ok();
  if (csr_host) {
    LMS_CUDA_RETURN_IF_ERROR(cudaFreeHost(csr_host));
    csr_host = nullptr;
    csr_host_bytes = 0;
  }
  const size_t want = std::max(bytes, size_t{4096});
  LMS_CUDA_RETURN_IF_ERROR(cudaMallocHost(&csr_host, want));
  csr_host_bytes = want;
  return Status::Ok();
}

Status TrainKernels::Impl::ConvertToBf16(DeviceScratch& s, const float* src, int64_t n, const void** out) {
  LMS_RETURN_IF_ERROR(Reserve(s, static_cast<size_t>(n) * 2));
  if (n > 0) LMS_CUDA_RETURN_IF_ERROR(LaunchToBf16(s.p, src, n, stream));
  *out = s.p;
  return Status::Ok();
}

Status TrainKernels::Impl::InputToBf16(DeviceScratch& s, Activation src, int64_t n, const void** out) {
  if (src.bf16 != nullptr) {
    *out = src.bf16;
    return Status::Ok();
  }
  if (src.f32 == nullptr) return Status::InvalidArgument("a matrix product without its input");
  return ConvertToBf16(s, src.f32, n, out);
}

Status TrainKernels::Impl::Gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                                const void* A, int64_t lda, const void* B, int64_t ldb, Output C, int64_t ldc,
                                float beta, bool bf16) {
  if (!FitsInt({m, n, k, lda, ldb, ldc})) return Status::InvalidArgument("matrix product exceeds cuBLAS's int sizes");
  if ((C.f32 == nullptr) == (C.bf16 == nullptr)) return Status::InvalidArgument("a matrix product needs one output");
  if (C.bf16 && !bf16) return Status::InvalidArgument("a bf16 product output needs bf16 operands");
  const float alpha = 1.0f;
  const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  void* c = C.bf16 ? C.bf16 : static_cast<void*>(C.f32);
  LMS_CUBLAS_RETURN_IF_ERROR(cublasGemmEx(cublas, ta, tb, static_cast<int>(m), static_cast<int>(n),
                                          static_cast<int>(k), &alpha, A, t, static_cast<int>(lda), B, t,
                                          static_cast<int>(ldb), &beta, c, C.bf16 ? CUDA_R_16BF : CUDA_R_32F,
                                          static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return Status::Ok();
}

Status TrainKernels::Impl::GemmBatched(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                                       const float* const* A, int64_t lda, const float* const* B, int64_t ldb,
                                       float* const* C, int64_t ldc, float beta, int64_t count, bool tf32) {
  if (!FitsInt({m, n, k, lda, ldb, ldc, count})) {
    return Status::InvalidArgument("batched matrix product exceeds cuBLAS's int sizes");
  }
  const float alpha = 1.0f;
  LMS_CUBLAS_RETURN_IF_ERROR(cublasGemmBatchedEx(
      cublas, ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &alpha,
      reinterpret_cast<const void* const*>(A), CUDA_R_32F, static_cast<int>(lda),
      reinterpret_cast<const void* const*>(B), CUDA_R_32F, static_cast<int>(ldb), &beta,
      reinterpret_cast<void* const*>(C), CUDA_R_32F, static_cast<int>(ldc), static_cast<int>(count),
      // The mixed-precision mode lets the attention products use TF32 tensor cores (inputs
      // rounded to 10 mantissa bits, fp32 accumulation); kF32 keeps full fp32.
      precision == GemmPrecision::kBF16 && tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT));
  return Status::Ok();
}

TrainKernels::TrainKernels(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrainKernels::~TrainKernels() = default;

Result<std::unique_ptr<TrainKernels>> TrainKernels::Create(cudaStream_t stream, GemmPrecision precision) {
  auto impl = std::make_unique<Impl>();
  impl->stream = stream;
  impl->precision = precision;
  LMS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&impl->csr_uploaded, cudaEventDisableTiming));
  LMS_CUBLAS_RETURN_IF_ERROR(cublasCreate(&impl->cublas));
  LMS_CUBLAS_RETURN_IF_ERROR(cublasSetStream(impl->cublas, stream));
  // Default math with CUBLAS_COMPUTE_32F: no TF32 for fp32 operands (that needs an explicit
  // opt-in), bf16 operands accumulate in fp32.
  LMS_CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(impl->cublas, CUBLAS_DEFAULT_MATH));
  if (OpTimesRequested()) impl->times = std::make_unique<OpTimes>();
  return std::unique_ptr<TrainKernels>(new TrainKernels(std::move(impl)));
}

cudaStream_t TrainKernels::stream() const { return impl_->stream; }
OpTimes* TrainKernels::op_times() const { return impl_->times.get(); }
GemmPrecision TrainKernels::precision() const { return impl_->precision; }

Status TrainKernels::ToBf16(void* dst, const float* src, int64_t n) {
  OpScope op_scope(impl_->times.get(), "to bf16", impl_->stream);
  if (n <= 0) return Status::Ok();
  return CudaStatus(LaunchToBf16(dst, src, n, impl_->stream), "ToBf16");
}

}  // namespace lms::gpu::train
