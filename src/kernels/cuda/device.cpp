#include "kernels/cuda/device.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "kernels/cuda/cuda_check.h"

namespace nemotron::cuda {

void strided_copy(void* dst, const void* src_base, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& strides, int64_t offset, size_t elem_size, int device);
void convert(const void* src, DType from, void* dst, DType to, size_t n, int device);  // cuda_ops.cpp

namespace {

constexpr int kMaxDevices = 16;

struct DeviceState {
  std::mutex mu;
  // Free blocks by rounded size; a multimap gives best fit with lower_bound.
  std::multimap<size_t, void*> free_blocks;
  std::unordered_map<void*, size_t> block_size;  // every block we own, live or cached
  AllocatorStats stats;
};

DeviceState& state(int device) {
  static DeviceState states[kMaxDevices];
  NT_CHECK(device >= 0 && device < kMaxDevices, "CUDA device index {} out of range", device);
  return states[device];
}

size_t round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20;
  if (n <= (size_t(1) << 20)) return (std::max<size_t>(n, 1) + kSmall - 1) / kSmall * kSmall;
  return (n + kLarge - 1) / kLarge * kLarge;
}

void register_backend() {
  DeviceBackend b;
  b.allocate = [](size_t n, int dev) { return allocate(n, dev); };
  b.release = [](void* p, int dev) { release(p, dev); };
  b.copy = [](void* dst, Device dd, const void* src, Device sd, size_t n) {
    cudaMemcpyKind kind = dd.is_cpu() ? cudaMemcpyDeviceToHost
                          : sd.is_cpu() ? cudaMemcpyHostToDevice
                                        : cudaMemcpyDeviceToDevice;
    NT_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, kind, current_stream()));
    // Host-visible results must be complete when copy_ returns.
    NT_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  };
  b.zero = [](void* p, int, size_t n) { NT_CUDA_CHECK(cudaMemsetAsync(p, 0, n, current_stream())); };
  b.strided_copy = strided_copy;
  b.convert = convert;
  register_device_backend(DeviceType::CUDA, std::move(b));
}

// Registers the backend at start-up when a GPU is present, so Tensor::empty(..., Device::cuda()) works
// before any op has run.
[[maybe_unused]] const int kDevicesAtStartup = device_count();

}  // namespace

int device_count() {
  static int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no driver" error
      return 0;
    }
    if (n > 0) register_backend();
    return n;
  }();
  return count;
}

bool available() { return device_count() > 0; }

cudaStream_t current_stream() {
  static cudaStream_t stream = [] {
    NT_CHECK(available(), "no CUDA device is available");
    cudaStream_t s;
    NT_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }();
  return stream;
}

cublasLtHandle_t cublaslt_handle() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t handle;
    NT_CUBLAS_CHECK(cublasLtCreate(&handle));
    return handle;
  }();
  return h;
}

void synchronize() { NT_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

void* allocate(size_t nbytes, int device) {
  DeviceState& st = state(device);
  size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(st.mu);
  void* ptr = nullptr;
  auto it = st.free_blocks.lower_bound(size);
  // Reuse a cached block unless it is much larger than asked for (then it would waste memory).
  if (it != st.free_blocks.end() && it->first <= 2 * size) {
    ptr = it->second;
    size = it->first;
    st.free_blocks.erase(it);
  } else {
    NT_CUDA_CHECK(cudaSetDevice(device));
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation && !st.free_blocks.empty()) {
      cudaGetLastError();
      // Out of memory: give the cache back to the driver and try once more.
      NT_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
      for (auto& [sz, p] : st.free_blocks) {
        NT_CUDA_CHECK(cudaFree(p));
        st.block_size.erase(p);
        st.stats.reserved_bytes -= sz;
      }
      st.free_blocks.clear();
      err = cudaMalloc(&ptr, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      fail("out of GPU memory on cuda:{} allocating {} bytes ({} in live tensors, {} reserved)", device, nbytes,
           st.stats.allocated_bytes, st.stats.reserved_bytes);
    }
    st.block_size[ptr] = size;
    st.stats.reserved_bytes += size;
    st.stats.device_malloc_calls++;
  }
  st.stats.allocated_bytes += size;
  st.stats.peak_allocated_bytes = std::max(st.stats.peak_allocated_bytes, st.stats.allocated_bytes);
  return ptr;
}

void release(void* ptr, int device) {
  DeviceState& st = state(device);
  std::lock_guard<std::mutex> lock(st.mu);
  auto it = st.block_size.find(ptr);
  if (it == st.block_size.end()) return;  // not ours; never happens for tensors we allocated
  // All work is on one stream, so a later allocation that reuses this block is ordered after every
  // kernel that used it; no event is needed.
  st.stats.allocated_bytes -= it->second;
  st.free_blocks.emplace(it->second, ptr);
}

AllocatorStats allocator_stats(int device) {
  DeviceState& st = state(device);
  std::lock_guard<std::mutex> lock(st.mu);
  return st.stats;
}

void empty_cache() {
  if (!available()) return;
  synchronize();
  for (int d = 0; d < device_count(); ++d) {
    DeviceState& st = state(d);
    std::lock_guard<std::mutex> lock(st.mu);
    for (auto& [sz, p] : st.free_blocks) {
      NT_CUDA_CHECK(cudaFree(p));
      st.block_size.erase(p);
      st.stats.reserved_bytes -= sz;
    }
    st.free_blocks.clear();
  }
}

}  // namespace nemotron::cuda
