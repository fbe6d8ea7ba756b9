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

// Drops dimensions of size 1 and merges neighbours that are contiguous with each other, so that a
// narrowed view (rows of contiguous segments) becomes [rows, segment] with the segment's stride 1.
void collapse(Dims& d, Strides& st) {
  Dims out{0, {}};
  Strides ost{};
  for (int k = 0; k < d.nd; ++k) {
    if (d.size[k] == 1) continue;
    if (out.nd > 0 && ost.s[out.nd - 1] == st.s[k] * d.size[k]) {
      out.size[out.nd - 1] *= d.size[k];
      ost.s[out.nd - 1] = st.s[k];
      continue;
    }
    out.size[out.nd] = d.size[k];
    ost.s[out.nd] = st.s[k];
    ++out.nd;
  }
  d = out;
  st = ost;
}
}  // namespace

cudaError_t strided_copy(void* dst, const void* src_base, Dims d, Strides st, int64_t offset, int elem_size,
                         cudaStream_t s) {
  for (int k = 0; k < d.nd; ++k)
    if (d.size[k] == 0) return cudaSuccess;
  collapse(d, st);
  const char* src = static_cast<const char*>(src_base) + offset * elem_size;
  // Rows of contiguous segments (narrow along the last dimension, the common case): the copy engine's
  // 2-D copy runs at memory speed, the element-wise kernel below at a fraction of it.
  if (d.nd == 0) return cudaMemcpyAsync(dst, src, elem_size, cudaMemcpyDeviceToDevice, s);
  if (d.nd == 1 && st.s[0] == 1)
    return cudaMemcpyAsync(dst, src, d.size[0] * elem_size, cudaMemcpyDeviceToDevice, s);
  if (d.nd == 2 && st.s[1] == 1)
    return cudaMemcpy2DAsync(dst, d.size[1] * elem_size, src, st.s[0] * elem_size, d.size[1] * elem_size, d.size[0],
                             cudaMemcpyDeviceToDevice, s);
  switch (elem_size) {
    case 1: return launch_copy<uint8_t>(dst, src_base, d, st, offset, s);
    case 2: return launch_copy<uint16_t>(dst, src_base, d, st, offset, s);
    case 4: return launch_copy<uint32_t>(dst, src_base, d, st, offset, s);
    case 8: return launch_copy<uint64_t>(dst, src_base, d, st, offset, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace nemotron::cuda::launch
