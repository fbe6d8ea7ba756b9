// Strided → contiguous gather, for Tensor::contiguous() of device tensors.
#include "kernels/cuda/launch.h"

namespace nemotron::cuda::launch {

namespace {
template <typename T>
__global__ void strided_copy_kernel(T* dst, const T* src, Dims d, Strides st, int64_t offset, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, off = offset;
    for (int k = d.nd - 1; k >= 0; --k) {
      off += (rem % d.size[k]) * st.s[k];
      rem /= d.size[k];
    }
    dst[i] = src[off];
  }
}

template <typename T>
cudaError_t launch_copy(void* dst, const void* src, Dims d, Strides st, int64_t offset, cudaStream_t s) {
  int64_t n = 1;
  for (int k = 0; k < d.nd; ++k) n *= d.size[k];
  if (n == 0) return cudaGetLastError();
  int64_t blocks = (n + 255) / 256;
  strided_copy_kernel<T><<<static_cast<unsigned>(blocks < 1048560 ? blocks : 1048560), 256, 0, s>>>(
      static_cast<T*>(dst), static_cast<const T*>(src), d, st, offset, n);
  return cudaGetLastError();
}
}  // namespace

cudaError_t strided_copy(void* dst, const void* src_base, Dims d, Strides st, int64_t offset, int elem_size,
                         cudaStream_t s) {
  switch (elem_size) {
    case 1: return launch_copy<uint8_t>(dst, src_base, d, st, offset, s);
    case 2: return launch_copy<uint16_t>(dst, src_base, d, st, offset, s);
    case 4: return launch_copy<uint32_t>(dst, src_base, d, st, offset, s);
    case 8: return launch_copy<uint64_t>(dst, src_base, d, st, offset, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace nemotron::cuda::launch
