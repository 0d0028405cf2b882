// The CUDA runtime and cuBLAS calls that lmstation's GPU host code makes, implemented on the CPU
// (host_runtime.cpp) so that code runs unchanged where no GPU is present: the training engine,
// its transports and its tests. What it models, and what it checks as a driver would:
//  - Devices: LMS_HOST_GPUS of them (2 unless set), each with a current-device setting per
//    thread. Copies reach any device. A kernel passed (as a pointer argument; pointers inside
//    structures are not seen) memory of another device aborts unless that memory is reachable:
//    cudaDeviceEnablePeerAccess for cudaMalloc's memory, cudaMemPoolSetAccess for cudaMallocAsync's.
//  - Memory: every device or pinned allocation is host memory, filled with 0xFF bytes (NaN in
//    fp32 and bf16) so a read of anything never written shows, and followed by guard bytes that
//    are checked after every kernel launch, copy and set, and at free: a write past the end of a
//    buffer aborts naming the kernel or call. Copies and sets must lie inside one allocation when
//    they touch device memory; a freed or unknown device pointer is refused.
//  - Streams and events: each stream (and each device's legacy default stream) queues its
//    launches, copies, sets and products, and runs them only when the program must wait for them:
//    a stream, event or device synchronize, a wait on an event recorded after them, a blocking
//    copy to the host, cudaFree. Work of different streams thus runs in the latest order CUDA
//    allows: a missing wait between streams, or a host read of memory a copy has not yet written,
//    gives a wrong result rather than passing by luck. cudaMemcpy from pageable memory returns
//    once the data is staged, as documented, without waiting for the copy; cudaMemset is
//    asynchronous. The legacy stream and blocking streams wait for each other; non-blocking
//    streams wait for nothing. Events record the wall time at which their stream reached them;
//    elapsed time between events not yet reached is cudaErrorNotReady. LMS_HOST_STREAMS=eager
//    runs all work at once instead.
//  - Graphs: a capturing stream records its launches, copies, sets and products (arguments by
//    value) instead of running them; a graph launch runs them in order. The calls a capture in
//    thread-local mode forbids on the capturing thread (synchronous copies and sets, cudaMalloc,
//    synchronizing) fail and invalidate the capture, as the driver does.
//  - cuBLAS: column-major GemmEx and GemmBatchedEx on fp32 or bf16 operands with fp32 output,
//    summed in double; FAST_TF32 rounds fp32 operands to TF32 first; beta = 0 never reads C (it
//    may hold NaN); leading dimensions are checked as cuBLAS checks them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "cuda_host.h"

// ---- runtime
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
using cudaEvent_t = struct HostEvent*;
using cudaGraph_t = struct HostGraph*;
using cudaGraphExec_t = struct HostGraph*;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaDeviceAttr { cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37 };
using cudaMemPool_t = struct HostMemPool*;
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventDisableTiming = 2;
enum cudaMemLocationType { cudaMemLocationTypeInvalid = 0, cudaMemLocationTypeDevice = 1 };
enum cudaMemAccessFlags { cudaMemAccessFlagsProtNone = 0, cudaMemAccessFlagsProtRead = 1, cudaMemAccessFlagsProtReadWrite = 3 };
struct cudaMemLocation {
  cudaMemLocationType type;
  int id;
};
struct cudaMemAccessDesc {
  cudaMemLocation location;
  cudaMemAccessFlags flags;
};
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  int multiProcessorCount;
  int major, minor;
  int pciBusID, pciDeviceID, pciDomainID;
  int warpSize;
  int maxThreadsPerBlock;
};

const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDeviceGetPCIBusId(char* id, int len, int d);
cudaError_t cudaDeviceCanAccessPeer(int* can, int d, int peer);
cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned flags);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int d);
cudaError_t cudaMemPoolSetAccess(cudaMemPool_t pool, const cudaMemAccessDesc* desc, size_t count);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int d);

cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t s);
cudaError_t cudaMallocHost(void** p, size_t bytes);
// The runtime header's typed overloads.
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <class T>
cudaError_t cudaMallocAsync(T** p, size_t bytes, cudaStream_t s) {
  return cudaMallocAsync(reinterpret_cast<void**>(p), bytes, s);
}
template <class T>
cudaError_t cudaMallocHost(T** p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaFreeAsync(void* p, cudaStream_t s);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
                                cudaStream_t s = nullptr);
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// cudaLaunchKernelEx with the one attribute lmstation sets, programmatic stream serialization
// (gpu/ops/launch.cuh); any other attribute is refused.
enum cudaLaunchAttributeID { cudaLaunchAttributeProgrammaticStreamSerialization = 6 };
union cudaLaunchAttributeValue {
  char pad[64];
  int programmaticStreamSerializationAllowed;
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim, blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned numAttrs;
};
template <class... P, class... A>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* c, void (*kernel)(P...), A&&... args) {
  HostLaunchConfig cfg(c->gridDim, c->blockDim, c->dynamicSmemBytes, c->stream);
  for (unsigned i = 0; i < c->numAttrs; ++i) {
    if (c->attrs[i].id != cudaLaunchAttributeProgrammaticStreamSerialization) return cudaErrorInvalidValue;
    cfg.dependent = c->attrs[i].val.programmaticStreamSerializationAllowed != 0;
  }
  HostLaunch(cfg, kernel, static_cast<P>(std::forward<A>(args))...);
  return cudaSuccess;  // a refused launch is left in the last error, as for a plain launch
}

// For the tests: kernel launches so far, and device bytes allocated now.
long HostLaunchCount();
size_t HostDeviceBytesInUse();

// ---- cuBLAS
enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_NOT_SUPPORTED = 15
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
using cudaDataType = cudaDataType_t;
using cublasHandle_t = struct HostCublas*;

const char* cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasCreate(cublasHandle_t* h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t ta_type, int lda, const void* B,
                            cudaDataType_t tb_type, int ldb, const void* beta, void* C, cudaDataType_t tc_type,
                            int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const void* alpha, const void* const A[], cudaDataType_t ta_type, int lda,
                                   const void* const B[], cudaDataType_t tb_type, int ldb, const void* beta,
                                   void* const C[], cudaDataType_t tc_type, int ldc, int count,
                                   cublasComputeType_t compute, cublasGemmAlgo_t algo);
