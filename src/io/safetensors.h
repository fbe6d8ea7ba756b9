// safetensors files (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header, space-padded][data region]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data region) and may hold "__metadata__" (string → string).
//
// Reading validates everything the header claims before any tensor byte is touched, then hands out
// zero-copy Tensor views of a memory map. Writing streams one tensor at a time into a temporary file
// that is renamed into place, and produces files byte-identical to Python's
// safetensors.torch.save_file for the same tensors (same data order, header text and padding).
//
// dtype names: F64 F32 BF16 F16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8 BOOL, and packed FP4 E2M1.
// safetensors (>= 0.6) calls FP4 "F4" (shape counts 4-bit elements, two per byte): that is our
// DType::F4_E2M1, which we write as "F4" so Python can read it, and read from "F4" or "F4_E2M1".
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unordered_map>

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/file_util.h"

namespace nemotron::io {

// The safetensors library's limit on the header size; a larger length field means a corrupt file.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

using SafetensorsMetadata = std::map<std::string, std::string>;

// A tensor as a header declares it.
struct TensorDecl {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};

// A validated header entry.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;  // byte offsets within the data region
  uint64_t end = 0;
  uint64_t nbytes() const { return end - begin; }
};

// The name safetensors uses for a dtype ("F4" for F4_E2M1, otherwise dtype_name).
std::string_view safetensors_dtype_name(DType t);

class SafetensorsFile {
 public:
  // Reads and validates the header; the file is memory-mapped on the first tensor access.
  // Throws nemotron::Error naming the file (and the tensor) for any inconsistency. As with any
  // memory-mapped reader, the file must not be truncated by someone else while tensors view it.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const;
  // In data order (ascending offsets).
  const std::vector<SafetensorsEntry>& entries() const;
  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  // Errors (with a close-name suggestion) when absent.
  const SafetensorsEntry& entry(std::string_view name) const;
  const SafetensorsMetadata& metadata() const;
  uint64_t data_start() const;  // file offset of the data region

  // A CPU tensor viewing the mapped bytes (no copy); it keeps the mapping alive. Data whose offset is
  // not a multiple of the element size (legal, but never written by safetensors or by us) is copied
  // into an aligned tensor instead. Safe to call from several threads.
  Tensor tensor(std::string_view name) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Streams a safetensors file: all tensors are declared up front (so the header and every tensor's
// offset are known), then each tensor's data is written, in any order, straight to its place in a
// temporary file; finish() renames it onto `path`. Peak memory is about one (contiguous copy of a)
// tensor. Destroying the writer before finish() removes the temporary file.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors, SafetensorsMetadata metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The layout: Python safetensors' order (descending dtype alignment, then name).
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  // `t` must match the declaration's dtype and shape; it may be a strided view or on a GPU.
  void write(std::string_view name, const Tensor& t);
  // Raw bytes in the file's layout (little-endian, row-major, FP4 packed): exactly entry.nbytes().
  void write_bytes(std::string_view name, const void* data, size_t nbytes);
  // Errors if a declared tensor was not written.
  void finish();

 private:
  std::string path_;
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;  // name -> entries_ position
  std::vector<bool> written_;
  uint64_t data_start_ = 0;
  std::unique_ptr<AtomicFile> file_;  // null after finish()
  size_t index_of(std::string_view name) const;
};

// The header a writer produces for these tensors (exposed for tests and size estimates): the JSON
// text padded with spaces to a multiple of 8 bytes, without the length prefix.
std::string safetensors_header(const std::vector<SafetensorsEntry>& entries, const SafetensorsMetadata& metadata);
// Lays out declared tensors as Python safetensors does; checks names and shapes.
std::vector<SafetensorsEntry> safetensors_layout(std::vector<TensorDecl> tensors);

// Convenience: writes named tensors (any order, any layout, any device) in one call.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const SafetensorsMetadata& metadata = {});

}  // namespace nemotron::io
