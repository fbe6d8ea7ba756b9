// The CUDA device runtime: availability, the current stream, the cuBLASLt handle, and the caching
// allocator that keeps steady-state training steps free of cudaMalloc.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace nemotron::cuda {

// Number of usable GPUs (0 when there is no driver or device); registers the CUDA backend with core
// the first time it finds one.
int device_count();
bool available();

// Every op of this process runs on one stream per device, so ops are ordered without events.
cudaStream_t current_stream();
cublasLtHandle_t cublaslt_handle();
void synchronize();

// Caching allocator: freed blocks are kept in size-bucketed free lists and reused; cudaMalloc is
// called only when no cached block fits. Sizes round up to 512 bytes (small) or 2 MiB (large).
struct AllocatorStats {
  size_t allocated_bytes = 0;  // in live tensors
  size_t reserved_bytes = 0;   // held from the driver (live + cached)
  size_t peak_allocated_bytes = 0;
  uint64_t device_malloc_calls = 0;  // cudaMalloc calls so far
};
void* allocate(size_t nbytes, int device);
void release(void* ptr, int device);
AllocatorStats allocator_stats(int device = 0);
void empty_cache();  // returns cached blocks to the driver

}  // namespace nemotron::cuda
