// Tensor: a typed, strided view of shared storage on a device.
//
// Storage is reference-counted and may own its bytes (allocated here, on the CPU or through the
// registered device allocator) or borrow them (a memory-mapped safetensors file, kept alive by a
// shared owner). Views (slice, select, transpose, view, ...) share storage; contiguous() and clone()
// copy. Strides and offsets count elements. The packed 4-bit type supports only contiguous tensors
// starting on a byte boundary.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace nemotron {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

// How a non-CPU backend plugs into core without core depending on it: the CUDA module registers
// one of these at start-up.
struct DeviceBackend {
  std::function<void*(size_t nbytes, int device)> allocate;
  std::function<void(void* ptr, int device)> release;
  // Copies nbytes between any two of (host, device); both pointers are contiguous.
  std::function<void(void* dst, Device dst_dev, const void* src, Device src_dev, size_t nbytes)> copy;
  std::function<void(void* ptr, int device, size_t nbytes)> zero;
  // Gathers a strided device tensor into contiguous device memory of the same dtype.
  std::function<void(void* dst, const void* src_base, const std::vector<int64_t>& shape,
                     const std::vector<int64_t>& strides, int64_t offset, size_t elem_size, int device)>
      strided_copy;
  // Converts n contiguous elements between F32 and BF16 on the device.
  std::function<void(const void* src, DType from, void* dst, DType to, size_t n, int device)> convert;
};
void register_device_backend(DeviceType type, DeviceBackend backend);
bool device_backend_available(DeviceType type);
// The device a run asked for by name (the --device flags): "cpu", "cuda" (an error when no GPU is
// usable), or "auto" (the GPU when this build has CUDA and one is present, else the CPU).
Device device_from_name(const std::string& name);

class Storage {
 public:
  // Owned, uninitialised bytes.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  // Borrowed bytes kept alive by `owner` (e.g. a memory map).
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool owned_ = false;
  std::shared_ptr<void> owner_;
};

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;  // undefined tensor

  static Tensor empty(Shape shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(Shape shape, DType dtype, Device device = Device::cpu());
  static Tensor full(Shape shape, double value, DType dtype = DType::F32);  // CPU
  // A contiguous view of external bytes; `owner` keeps them alive.
  static Tensor from_blob(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner,
                          Device device = Device::cpu());
  // CPU tensor holding a copy of `values` (F32, F64, I32 or I64 by element type).
  static Tensor from_vector(const std::vector<float>& values, Shape shape);
  static Tensor from_vector(const std::vector<double>& values, Shape shape);
  static Tensor from_vector(const std::vector<int32_t>& values, Shape shape);
  static Tensor from_vector(const std::vector<int64_t>& values, Shape shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const;
  int64_t offset() const { return offset_; }
  size_t nbytes() const { return dtype_nbytes(dtype_, static_cast<size_t>(numel())); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::string str() const;  // "BF16[2, 3] cpu"

  // Pointer to the first element (byte-exact for packed types: offset must be even).
  void* raw_data() const;
  // Typed pointer; checks that T matches the dtype (uint16_t for BF16/F16, uint8_t for FP8/FP4/U8/Bool).
  template <typename T>
  T* data() const;

  // ---- views (share storage) ----
  Tensor view(Shape shape) const;  // contiguous only; one dim may be -1
  Tensor reshape(Shape shape) const;  // view when possible, else a contiguous copy
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // end exclusive
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const { return slice(dim, start, start + length); }
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten() const { return reshape({numel()}); }

  // ---- copies ----
  Tensor contiguous() const;  // self when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dtype) const;   // exact conversion (core/dtype_convert.h); F32 ⇄ BF16 on devices
  Tensor to(Device device) const; // self when already there
  // Copies src into this tensor (same shape; dtypes may differ on the CPU; devices may differ when
  // dtypes match).
  void copy_(const Tensor& src);
  void zero_();
  void fill_(double value);  // CPU

  // ---- element access for tests and small host-side work (CPU only, converts through double) ----
  double item() const;  // one element
  double at(std::initializer_list<int64_t> idx) const;
  std::vector<float> to_f32_vector() const;
  std::vector<int64_t> to_i64_vector() const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t offset_ = 0;  // elements
  DType dtype_ = DType::F32;

  int64_t norm_dim(int64_t d, int64_t ndim_plus = 0) const;
  static std::vector<int64_t> contiguous_strides(const Shape& s);
};

}  // namespace nemotron
