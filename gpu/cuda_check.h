// Turning CUDA and cuBLAS error codes into Status values.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include "core/util/status.h"

namespace lms::gpu {

inline Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  if (e == cudaErrorMemoryAllocation) {
    return Status::ResourceExhausted(fmt::format("CUDA out of memory in {}", what));
  }
  return Status::Internal(fmt::format("CUDA error in {}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)));
}

inline Status CublasStatus(cublasStatus_t e, const char* what) {
  if (e == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return Status::Internal(fmt::format("cuBLAS error in {}: {}", what, cublasGetStatusString(e)));
}

}  // namespace lms::gpu

#define LMS_CUDA_RETURN_IF_ERROR(expr) LMS_RETURN_IF_ERROR(::lms::gpu::CudaStatus((expr), #expr))
#define LMS_CUBLAS_RETURN_IF_ERROR(expr) LMS_RETURN_IF_ERROR(::lms::gpu::CublasStatus((expr), #expr))
