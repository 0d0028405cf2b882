// TrainKernels' private state (the stream, the cuBLAS handle, scratch buffers that grow on
// demand) and the launch functions of the kernels, shared by the files of gpu/train/.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/util/status.h"
#include "gpu/op_times.h"
#include "gpu/train/train_kernels.h"

namespace lms::gpu::train {

// A device buffer that only grows; freed and reallocated in stream order.
struct DeviceScratch {
  void* p = nullptr;
  size_t bytes = 0;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

struct TrainKernels::Impl {
  cudaStream_t stream = nullptr;
  GemmPrecision precision = GemmPrecision::kF32;
  cublasHandle_t cublas = nullptr;

  DeviceScratch bf16_a, bf16_b, bf16_w;  // bf16 copies of activations, gradients and weights
  DeviceScratch partials;                // per-block partial sums of the reductions
  DeviceScratch row_loss;                // cross-entropy: per-row losses (double)
  DeviceScratch ptrs;                    // attention: pointer arrays of the batched products
  DeviceScratch att_grad;                // attention backward: dP, then dS (B, H, T, T)
  DeviceScratch row_dot;                 // flash attention backward: rowsum(dO ⊙ O) (B, H, T)
  DeviceScratch csr;                     // embedding backward: the token → rows lists

  // Host staging of the CSR (pinned); csr_uploaded marks when its last copy has been read.
  void* csr_host = nullptr;
  size_t csr_host_bytes = 0;
  cudaEvent_t csr_uploaded = nullptr;

  std::unique_ptr<OpTimes> times;  // GPU time per op, when LMS_CUDA_OP_TIMES=1

  ~Impl();

  // Makes s hold at least `bytes` (contents not kept).
  Status Reserve(DeviceScratch& s, size_t bytes);
  Status ReserveHost(size_t bytes);  // csr_host; waits until the previous upload has been read

  // bf16 copy of n floats into s (grown as needed); returns the device pointer through out.
  Status ConvertToBf16(DeviceScratch& s, const float* src, int64_t n, const void** out);
  // The same for a product's input: its own bf16 copy when it has one, else a conversion into s.
  Status InputToBf16(DeviceScratch& s, Activation src, int64_t n, const void** out);

  // C (column-major m×n, ldc) = alpha·op(A)·op(B) + beta·C with fp32 accumulation; A and B are
  // fp32 or (bf16 = true) bf16; C is fp32, or with bf16 given as C.bf16, bf16 too.
  Status Gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const void* A,
              int64_t lda, const void* B, int64_t ldb, Output C, int64_t ldc, float beta, bool bf16);
  // The same over `count` problems given by device pointer arrays (fp32 operands). tf32: TF32
  // tensor cores in kBF16 (cuBLAS then wants 16-byte aligned pointers, which it cannot check).
  Status GemmBatched(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                     const float* const* A, int64_t lda, const float* const* B, int64_t ldb, float* const* C,
                     int64_t ldc, float beta, int64_t count, bool tf32);
};

// CudaStatus of gpu/cuda_check.h for the .cu files (nvcc cannot compile its fmt calls).
Status LaunchStatus(cudaError_t e, const char* what);
#define LMS_TRAIN_RETURN_IF_CUDA_ERROR(expr) LMS_RETURN_IF_ERROR(::lms::gpu::train::LaunchStatus((expr), #expr))

// Kernel launches (return cudaGetLastError()). n > 0 unless said otherwise.
cudaError_t LaunchToBf16(void* dst, const float* src, int64_t n, cudaStream_t s);

// Pointer arrays for batched products: for i in [0, count), with b = i / heads, h = i % heads,
// out[i] = base + b·batch_stride + (h / head_div)·head_stride.
struct PtrSpec {
  const float* base;
  int64_t batch_stride, head_stride, head_div;
};
cudaError_t LaunchFillPointers(const float** out, PtrSpec a, PtrSpec b, PtrSpec c, int64_t count, int64_t heads,
                               cudaStream_t s);
// attention_flash.cu (see TrainKernels::FlashAttentionForward). D: (B, H, T) scratch. The
// operands are all fp32 or all bf16; lse2 and D are fp32 either way. ldq: the row stride of q
// and dq, ldkv: of k, v, dk and dv (0: packed, H·hd and KV·hd); out and dout are packed.
bool FlashAttentionSupportsHeadDim(int64_t hd);
cudaError_t LaunchFlashAttentionForward(const float* q, const float* k, const float* v, float* out, float* lse2,
                                        int B, int T, int H, int KV, int hd, cudaStream_t s, int64_t ldq = 0,
                                        int64_t ldkv = 0);
cudaError_t LaunchFlashAttentionForward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                        __nv_bfloat16* out, float* lse2, int B, int T, int H, int KV, int hd,
                                        cudaStream_t s, int64_t ldq = 0, int64_t ldkv = 0);
cudaError_t LaunchFlashAttentionBackward(const float* q, const float* k, const float* v, const float* out,
                                         const float* dout, const float* lse2, float* D, float* dq, float* dk,
                                         float* dv, int B, int T, int H, int KV, int hd, cudaStream_t s,
                                         int64_t ldq = 0, int64_t ldkv = 0);
cudaError_t LaunchFlashAttentionBackward(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                         const __nv_bfloat16* out, const __nv_bfloat16* dout, const float* lse2,
                                         float* D, __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, int B,
                                         int T, int H, int KV, int hd, cudaStream_t s, int64_t ldq = 0,
                                         int64_t ldkv = 0);
// Rows (rows of length T, row r's query index r % T): scale, causal mask, softmax in place.
cudaError_t LaunchCausalSoftmax(float* att, int64_t rows, int64_t T, float scale, cudaStream_t s);
// ds (rows of T) = p ⊙ (ds − rowsum(p ⊙ ds)) · scale over the causal part, zero above it.
cudaError_t LaunchCausalSoftmaxBackward(float* ds, const float* p, int64_t rows, int64_t T, float scale,
                                        cudaStream_t s);

}  // namespace lms::gpu::train
