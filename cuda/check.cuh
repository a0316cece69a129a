// Error checking of the CUDA target: every failed CUDA or cuBLAS call becomes a dsstne::Error carrying
// the call and the file:line where it was made.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "dsstne/errors.h"

#define DSSTNE_CUDA_CHECK(expr)                                                                            \
  do {                                                                                                     \
    const cudaError_t dsstne_cuda_status_ = (expr);                                                        \
    if (dsstne_cuda_status_ != cudaSuccess)                                                                \
      DSSTNE_RAISE(::dsstne::Error, "CUDA error ", cudaGetErrorName(dsstne_cuda_status_), " (",             \
                   cudaGetErrorString(dsstne_cuda_status_), ") in ", #expr);                               \
  } while (0)

#define DSSTNE_CUBLAS_CHECK(expr)                                                                          \
  do {                                                                                                     \
    const cublasStatus_t dsstne_cublas_status_ = (expr);                                                   \
    if (dsstne_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                    \
      DSSTNE_RAISE(::dsstne::Error, "cuBLAS error ", cublasGetStatusName(dsstne_cublas_status_), " (",      \
                   cublasGetStatusString(dsstne_cublas_status_), ") in ", #expr);                          \
  } while (0)

// After every kernel launch: reports a bad configuration or an earlier asynchronous fault without
// synchronising the device.
#define DSSTNE_LAUNCH_CHECK() DSSTNE_CUDA_CHECK(cudaGetLastError())
