#include "core/tensor.h"

#include <array>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>

#include "core/dtype_convert.h"

namespace nemotron {

// ---------------------------------------------------------------- devices and storage

namespace {
std::array<DeviceBackend, 2>& backends() {
  static std::array<DeviceBackend, 2> b;
  return b;
}
const DeviceBackend& backend(DeviceType t) {
  const DeviceBackend& b = backends()[static_cast<int>(t)];
  NT_CHECK(b.allocate, "no backend is available for device type {} (was this binary built with CUDA, "
                       "and is a GPU present?)", static_cast<int>(t));
  return b;
}
}  // namespace

void register_device_backend(DeviceType type, DeviceBackend b) { backends()[static_cast<int>(type)] = std::move(b); }
bool device_backend_available(DeviceType type) {
  return type == DeviceType::CPU || static_cast<bool>(backends()[static_cast<int>(type)].allocate);
}

Device device_from_name(const std::string& name) {
  const bool gpu = device_backend_available(DeviceType::CUDA);
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") {
    NT_CHECK(gpu, "--device cuda: no usable GPU (this build lacks CUDA or sees no GPU; `nemotron info` says "
                  "which); use --device cpu or auto");
    return Device::cuda();
  }
  NT_CHECK(name == "auto", "--device: unknown device '{}': use auto, cpu or cuda", name);
  return gpu ? Device::cuda() : Device::cpu();
}

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  std::shared_ptr<Storage> s(new Storage());
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->owned_ = true;
  if (device.is_cpu()) {
    // 64-byte alignment suits SIMD loads and BLAS.
    size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
    s->data_ = std::aligned_alloc(64, rounded);
    NT_CHECK(s->data_ != nullptr, "out of host memory allocating {} bytes", nbytes);
  } else {
    s->data_ = backend(device.type).allocate(nbytes, device.index);
  }
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->owner_ = std::move(owner);
  return s;
}

Storage::~Storage() {
  if (!owned_ || data_ == nullptr) return;
  if (device_.is_cpu())
    std::free(data_);
  else
    backend(device_.type).release(data_, device_.index);
}

// ---------------------------------------------------------------- shapes

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::vector<int64_t> Tensor::contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

static void check_shape(const Shape& shape) {
  for (int64_t d : shape) NT_CHECK(d >= 0, "invalid tensor shape {}: negative dimension", shape_str(shape));
}

// ---------------------------------------------------------------- construction

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.storage_ = Storage::allocate(dtype_nbytes(dtype, static_cast<size_t>(shape_numel(shape))), device);
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t = empty(std::move(shape), dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(Shape shape, double value, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_blob(void* data, Shape shape, DType dtype, std::shared_ptr<void> owner, Device device) {
  check_shape(shape);
  Tensor t;
  t.storage_ = Storage::borrow(data, dtype_nbytes(dtype, static_cast<size_t>(shape_numel(shape))), device,
                               std::move(owner));
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

template <typename T>
static Tensor tensor_from_values(const std::vector<T>& values, Shape shape, DType dtype) {
  NT_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: {} values for shape {}",
           values.size(), shape_str(shape));
  Tensor t = Tensor::empty(std::move(shape), dtype);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
Tensor Tensor::from_vector(const std::vector<float>& v, Shape s) { return tensor_from_values(v, std::move(s), DType::F32); }
Tensor Tensor::from_vector(const std::vector<double>& v, Shape s) { return tensor_from_values(v, std::move(s), DType::F64); }
Tensor Tensor::from_vector(const std::vector<int32_t>& v, Shape s) { return tensor_from_values(v, std::move(s), DType::I32); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, Shape s) { return tensor_from_values(v, std::move(s), DType::I64); }

// ---------------------------------------------------------------- properties

Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }

int64_t Tensor::norm_dim(int64_t d, int64_t ndim_plus) const {
  int64_t n = dim() + ndim_plus;
  int64_t r = d < 0 ? d + n : d;
  NT_CHECK(r >= 0 && r < n, "dimension {} out of range for tensor {}", d, str());
  return r;
}

int64_t Tensor::size(int64_t d) const { return shape_[norm_dim(d)]; }
int64_t Tensor::stride(int64_t d) const { return strides_[norm_dim(d)]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return fmt::format("{}{} {}", dtype_name(dtype_), shape_str(shape_), device().str());
}

void* Tensor::raw_data() const {
  NT_CHECK(defined(), "access to an undefined tensor");
  if (dtype_ == DType::F4_E2M1)
    NT_CHECK(offset_ % 2 == 0, "packed 4-bit tensor view starts mid-byte (element offset {})", offset_);
  return static_cast<char*>(storage_->data()) + dtype_nbytes(dtype_, static_cast<size_t>(offset_));
}

template <typename T>
static bool dtype_matches(DType d) {
  if constexpr (std::is_same_v<T, float>) return d == DType::F32;
  else if constexpr (std::is_same_v<T, double>) return d == DType::F64;
  else if constexpr (std::is_same_v<T, uint16_t>) return d == DType::BF16 || d == DType::F16;
  else if constexpr (std::is_same_v<T, int16_t>) return d == DType::I16;
  else if constexpr (std::is_same_v<T, int32_t>) return d == DType::I32;
  else if constexpr (std::is_same_v<T, int64_t>) return d == DType::I64;
  else if constexpr (std::is_same_v<T, int8_t>) return d == DType::I8;
  else if constexpr (std::is_same_v<T, uint8_t>)
    return d == DType::U8 || d == DType::Bool || d == DType::F8_E4M3 || d == DType::F8_E5M2 || d == DType::F4_E2M1;
  else if constexpr (std::is_same_v<T, bool>) return d == DType::Bool;
  else return false;
}

template <typename T>
T* Tensor::data() const {
  NT_CHECK(dtype_matches<T>(dtype_), "tensor {} accessed with the wrong element type", str());
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template uint16_t* Tensor::data<uint16_t>() const;
template int16_t* Tensor::data<int16_t>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template int8_t* Tensor::data<int8_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;
template bool* Tensor::data<bool>() const;

// ---------------------------------------------------------------- views

static void check_viewable(const Tensor& t, const char* op) {
  NT_CHECK(t.defined(), "{} of an undefined tensor", op);
  NT_CHECK(t.dtype() != DType::F4_E2M1 || t.is_contiguous(), "{}: packed 4-bit tensors support only "
                                                              "contiguous layouts", op);
}

static Shape infer_shape(Shape shape, int64_t numel, const std::string& from) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      NT_CHECK(infer_at < 0, "view {} of {}: only one dimension may be -1", shape_str(shape), from);
      infer_at = static_cast<int64_t>(i);
    } else {
      NT_CHECK(shape[i] >= 0, "view {} of {}: negative dimension", shape_str(shape), from);
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    NT_CHECK(known > 0 && numel % known == 0, "cannot view {} as {}", from, shape_str(shape));
    shape[infer_at] = numel / known;
  }
  NT_CHECK(shape_numel(shape) == numel, "cannot view {} as {}: element counts differ", from, shape_str(shape));
  return shape;
}

Tensor Tensor::view(Shape shape) const {
  check_viewable(*this, "view");
  NT_CHECK(is_contiguous(), "view of non-contiguous tensor {}: use reshape() or contiguous()", str());
  Tensor t = *this;
  t.shape_ = infer_shape(std::move(shape), numel(), str());
  t.strides_ = contiguous_strides(t.shape_);
  return t;
}

Tensor Tensor::reshape(Shape shape) const { return is_contiguous() ? view(std::move(shape)) : contiguous().view(std::move(shape)); }

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  check_viewable(*this, "slice");
  d = norm_dim(d);
  int64_t n = shape_[d];
  NT_CHECK(step > 0, "slice step must be positive, got {}", step);
  if (start < 0) start += n;
  if (end < 0) end += n;
  NT_CHECK(0 <= start && start <= end && end <= n, "slice [{}, {}) out of range for dimension {} of {}", start, end,
           d, str());
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = (end - start + step - 1) / step;
  t.strides_[d] *= step;
  return t;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = norm_dim(d);
  int64_t n = shape_[d];
  if (index < 0) index += n;
  NT_CHECK(0 <= index && index < n, "index {} out of range for dimension {} of {}", index, d, str());
  Tensor t = slice(d, index, index + 1);
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  check_viewable(*this, "transpose");
  d0 = norm_dim(d0);
  d1 = norm_dim(d1);
  Tensor t = *this;
  std::swap(t.shape_[d0], t.shape_[d1]);
  std::swap(t.strides_[d0], t.strides_[d1]);
  return t;
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  check_viewable(*this, "permute");
  NT_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute order has {} entries for {}", order.size(), str());
  std::vector<bool> seen(order.size(), false);
  Tensor t = *this;
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t d = norm_dim(order[i]);
    NT_CHECK(!seen[d], "permute order repeats dimension {}", d);
    seen[d] = true;
    t.shape_[i] = shape_[d];
    t.strides_[i] = strides_[d];
  }
  return t;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = norm_dim(d, 1);
  Tensor t = *this;
  int64_t st = d < dim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, st);
  return t;
}

Tensor Tensor::squeeze(int64_t d) const {
  d = norm_dim(d);
  NT_CHECK(shape_[d] == 1, "squeeze of dimension {} of size {} in {}", d, shape_[d], str());
  Tensor t = *this;
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return t;
}

// ---------------------------------------------------------------- copies

// Visits every element of a strided CPU tensor in row-major order, calling fn(element_offset).
template <typename Fn>
static void for_each_offset(const Shape& shape, const std::vector<int64_t>& strides, int64_t base, Fn&& fn) {
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  size_t nd = shape.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t off = base;
  for (int64_t i = 0; i < n; ++i) {
    fn(off);
    for (size_t k = nd; k-- > 0;) {
      if (++idx[k] < shape[k]) {
        off += strides[k];
        break;
      }
      off -= strides[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
}

// Gathers a strided CPU tensor into a contiguous byte buffer of the same dtype.
static void gather_contiguous(const Tensor& src, void* dst) {
  size_t es = static_cast<size_t>(dtype_bits(src.dtype()) / 8);
  const char* base = static_cast<const char*>(src.storage()->data());
  char* out = static_cast<char*>(dst);
  for_each_offset(src.shape(), src.strides(), src.offset(), [&](int64_t off) {
    std::memcpy(out, base + off * es, es);
    out += es;
  });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor t = empty(shape_, dtype_, device());
  if (device().is_cpu()) {
    gather_contiguous(*this, t.raw_data());
  } else {
    NT_CHECK(dtype_ != DType::F4_E2M1, "strided packed 4-bit tensor {}", str());
    backend(device().type)
        .strided_copy(t.raw_data(), storage_->data(), shape_, strides_, offset_,
                      static_cast<size_t>(dtype_bits(dtype_) / 8), device().index);
  }
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  t.copy_(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor src = contiguous();
  Tensor t = empty(shape_, dtype, device());
  if (device().is_cpu())
    convert(src.raw_data(), dtype_, t.raw_data(), dtype, static_cast<size_t>(numel()));
  else
    backend(device().type).convert(src.raw_data(), dtype_, t.raw_data(), dtype, static_cast<size_t>(numel()),
                                   device().index);
  return t;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t = empty(shape_, dtype_, device);
  t.copy_(*this);
  return t;
}

void Tensor::copy_(const Tensor& src) {
  NT_CHECK(defined() && src.defined(), "copy_ with an undefined tensor");
  NT_CHECK(shape_ == src.shape_, "copy_: shape {} into {}", shape_str(src.shape_), shape_str(shape_));
  if (numel() == 0) return;
  if (device().is_cpu() && src.device().is_cpu()) {
    if (dtype_ == src.dtype_ && is_contiguous()) {
      if (src.is_contiguous())
        std::memcpy(raw_data(), src.raw_data(), nbytes());
      else
        gather_contiguous(src, raw_data());
      return;
    }
    Tensor converted = src.to(dtype_).contiguous();
    if (is_contiguous()) {
      std::memcpy(raw_data(), converted.raw_data(), nbytes());
      return;
    }
    NT_CHECK(dtype_ != DType::F4_E2M1, "copy_ into a strided packed 4-bit tensor");
    size_t es = static_cast<size_t>(dtype_bits(dtype_) / 8);
    char* base = static_cast<char*>(storage_->data());
    const char* in = static_cast<const char*>(converted.raw_data());
    for_each_offset(shape_, strides_, offset_, [&](int64_t off) {
      std::memcpy(base + off * es, in, es);
      in += es;
    });
    return;
  }
  NT_CHECK(dtype_ == src.dtype_, "copy_ across devices needs equal dtypes ({} into {})", src.str(), str());
  NT_CHECK(is_contiguous(), "copy_ into a strided {} tensor {}", device().str(), str());
  Tensor s = src.contiguous();
  DeviceType accel = device().is_cpu() ? src.device().type : device().type;
  backend(accel).copy(raw_data(), device(), s.raw_data(), s.device(), nbytes());
}

void Tensor::zero_() {
  NT_CHECK(defined(), "zero_ of an undefined tensor");
  if (!is_contiguous()) {
    fill_(0.0);
    return;
  }
  if (device().is_cpu())
    std::memset(raw_data(), 0, nbytes());
  else
    backend(device().type).zero(raw_data(), device().index, nbytes());
}

void Tensor::fill_(double value) {
  NT_CHECK(device().is_cpu(), "fill_ on {}: only CPU tensors", device().str());
  Tensor one = from_vector(std::vector<double>{value}, {1}).to(dtype_);
  size_t es = dtype_nbytes(dtype_, 1);
  NT_CHECK(dtype_ != DType::F4_E2M1, "fill_ of packed 4-bit tensors is not supported");
  char* base = static_cast<char*>(storage_->data());
  const void* v = one.raw_data();
  for_each_offset(shape_, strides_, offset_, [&](int64_t off) { std::memcpy(base + off * es, v, es); });
}

// ---------------------------------------------------------------- element access

double Tensor::item() const {
  NT_CHECK(numel() == 1, "item() of {} with {} elements", str(), numel());
  Tensor c = to(Device::cpu()).contiguous().to(DType::F64);
  return *c.data<double>();
}

double Tensor::at(std::initializer_list<int64_t> idx) const {
  NT_CHECK(static_cast<int64_t>(idx.size()) == dim(), "at(): {} indices for {}", idx.size(), str());
  Tensor t = *this;
  for (int64_t i : idx) t = t.select(0, i);
  return t.item();
}

std::vector<float> Tensor::to_f32_vector() const {
  Tensor c = to(Device::cpu()).contiguous().to(DType::F32);
  const float* p = c.data<float>();
  return std::vector<float>(p, p + c.numel());
}

std::vector<int64_t> Tensor::to_i64_vector() const {
  Tensor c = to(Device::cpu()).contiguous().to(DType::I64);
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

}  // namespace nemotron
