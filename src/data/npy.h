// Integer arrays in NumPy's .npy format: the files Megatron caches its dataset indices in
// (document_index.npy, sample_index.npy, shuffle_index.npy, dataset_index.npy, ...). We write them
// byte-identical to numpy.save (format 1.0, the header padded as NumPy pads it) so either system can
// read the other's cache, and read them memory-mapped with the header checked against the file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace nemotron::data {

// The little-endian integer element types the indices use.
enum class NpyType { Int16, Int32, Int64, UInt32 };
const char* npy_descr(NpyType type);  // "<i2", "<i4", "<i8", "<u4"
size_t npy_itemsize(NpyType type);

template <typename T> constexpr NpyType npy_type_of();
template <> constexpr NpyType npy_type_of<int16_t>() { return NpyType::Int16; }
template <> constexpr NpyType npy_type_of<int32_t>() { return NpyType::Int32; }
template <> constexpr NpyType npy_type_of<int64_t>() { return NpyType::Int64; }
template <> constexpr NpyType npy_type_of<uint32_t>() { return NpyType::UInt32; }

// The complete header numpy.save writes for a C-ordered array (magic, version 1.0, length, dict,
// padding to a multiple of 64 bytes, newline).
std::string npy_header(NpyType type, const std::vector<int64_t>& shape);

// A read-only C-ordered integer array, owned in memory or mapped from a .npy file.
class NpyArray {
 public:
  NpyArray() = default;

  template <typename T>
  static NpyArray from_vector(std::vector<T> values, std::vector<int64_t> shape) {
    auto owned = std::make_shared<std::vector<T>>(std::move(values));
    NpyArray a;
    a.type_ = npy_type_of<T>();
    a.shape_ = std::move(shape);
    a.data_ = reinterpret_cast<const uint8_t*>(owned->data());
    const auto count = static_cast<int64_t>(owned->size());
    a.owner_ = std::move(owned);
    a.check_size(count);
    return a;
  }
  // Maps `path`; errors (naming the file) for a bad magic, unsupported version or dtype, Fortran
  // order, a malformed header or a file shorter than the header says.
  static NpyArray load(const std::string& path);
  // Writes the array atomically (temp file + rename).
  void save(const std::string& path) const;

  NpyType type() const { return type_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t element_count() const;
  // Element at a flat (row-major) index, widened to int64.
  int64_t operator[](int64_t flat) const {
    switch (type_) {
      case NpyType::Int16: return load_as<int16_t>(flat);
      case NpyType::Int32: return load_as<int32_t>(flat);
      case NpyType::Int64: return load_as<int64_t>(flat);
      case NpyType::UInt32: return load_as<uint32_t>(flat);
    }
    return 0;
  }
  int64_t at(int64_t row, int64_t col) const { return (*this)[row * shape_[1] + col]; }

 private:
  template <typename T>
  int64_t load_as(int64_t flat) const {
    T v;
    __builtin_memcpy(&v, data_ + flat * sizeof(T), sizeof(T));
    return static_cast<int64_t>(v);
  }
  void check_size(int64_t count) const;  // count must equal the product of the shape

  NpyType type_ = NpyType::Int64;
  std::vector<int64_t> shape_;
  const uint8_t* data_ = nullptr;
  std::shared_ptr<const void> owner_;
};

}  // namespace nemotron::data
