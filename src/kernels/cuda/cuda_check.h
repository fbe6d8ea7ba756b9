// Error checking for every CUDA runtime / cuBLAS call and kernel launch: failures become
// nemotron::Error naming the call, the file and line, and CUDA's own message.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/error.h"

#define NT_CUDA_CHECK(call)                                                                             \
  do {                                                                                                  \
    cudaError_t err_ = (call);                                                                          \
    if (err_ != cudaSuccess)                                                                            \
      ::nemotron::fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(err_), cudaGetErrorString(err_), \
                       #call, __FILE__, __LINE__);                                                      \
  } while (0)

#define NT_CUBLAS_CHECK(call)                                                                          \
  do {                                                                                                 \
    cublasStatus_t st_ = (call);                                                                       \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      ::nemotron::fail("cuBLAS error {} in {} at {}:{}", static_cast<int>(st_), #call, __FILE__, __LINE__); \
  } while (0)

// After a <<<...>>> launch: catches bad launch configurations immediately.
#define NT_CUDA_LAUNCH_CHECK() NT_CUDA_CHECK(cudaGetLastError())
