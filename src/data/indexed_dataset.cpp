#include "data/indexed_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace nemotron::data {

namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderSize = 34;  // magic 9 + version 8 + dtype 1 + counts 8 + 8
constexpr size_t kBufferBytes = 1 << 20;

template <typename T>
T load(const uint8_t* p) {  // unaligned little-endian load (x86 / aarch64 are little-endian)
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void append_raw(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

bool is_integer_dtype(TokenDType d) {
  return d != TokenDType::Float32 && d != TokenDType::Float64;
}

}  // namespace

size_t token_dtype_size(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::UInt8: case TokenDType::Int8: return 1;
    case TokenDType::Int16: case TokenDType::UInt16: return 2;
    case TokenDType::Int32: case TokenDType::Float32: return 4;
    case TokenDType::Int64: case TokenDType::Float64: return 8;
  }
  fail("unknown indexed-dataset dtype code {}", static_cast<int>(dtype));
}

const char* token_dtype_name(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::UInt8: return "uint8";
    case TokenDType::Int8: return "int8";
    case TokenDType::Int16: return "int16";
    case TokenDType::Int32: return "int32";
    case TokenDType::Int64: return "int64";
    case TokenDType::Float64: return "float64";
    case TokenDType::Float32: return "float32";
    case TokenDType::UInt16: return "uint16";
  }
  return "unknown";
}

TokenDType optimal_token_dtype(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::UInt16 : TokenDType::Int32;
}

std::string idx_path(const std::string& prefix) { return prefix + ".idx"; }
std::string bin_path(const std::string& prefix) { return prefix + ".bin"; }

// ---------------------------------------------------------------------------------------------
// Writer

IndexedDatasetBuilder::IndexedDatasetBuilder(std::string prefix, TokenDType dtype)
    : prefix_(std::move(prefix)), dtype_(dtype) {
  NT_CHECK(is_integer_dtype(dtype), "indexed dataset {}: cannot write token dtype {}", prefix_,
           token_dtype_name(dtype));
  bin_tmp_ = bin_path(prefix_) + ".tmp";
  idx_tmp_ = idx_path(prefix_) + ".tmp";
  bin_ = std::fopen(bin_tmp_.c_str(), "wb");
  NT_CHECK(bin_, "cannot create {}: {} (does the output directory exist and is it writable?)", bin_tmp_,
           std::strerror(errno));
  buffer_.reserve(kBufferBytes);
}

IndexedDatasetBuilder::~IndexedDatasetBuilder() {
  if (bin_) std::fclose(bin_);
  if (!finalized_) {
    std::remove(bin_tmp_.c_str());
    std::remove(idx_tmp_.c_str());
  }
}

void IndexedDatasetBuilder::flush() {
  if (buffer_.empty()) return;
  NT_CHECK(std::fwrite(buffer_.data(), 1, buffer_.size(), bin_) == buffer_.size(), "cannot write {}: {}",
           bin_tmp_, std::strerror(errno));
  buffer_.clear();
}

void IndexedDatasetBuilder::write_tokens(std::span<const int32_t> tokens) {
  NT_CHECK(!finalized_, "indexed dataset {}: write after finalize", prefix_);
  int64_t lo = 0, hi = 0;
  switch (dtype_) {
    case TokenDType::UInt8: lo = 0; hi = 255; break;
    case TokenDType::Int8: lo = -128; hi = 127; break;
    case TokenDType::Int16: lo = -32768; hi = 32767; break;
    case TokenDType::UInt16: lo = 0; hi = 65535; break;
    default: lo = std::numeric_limits<int32_t>::min(); hi = std::numeric_limits<int32_t>::max(); break;
  }
  for (int32_t t : tokens) {
    NT_CHECK(t >= lo && t <= hi, "indexed dataset {}: token id {} does not fit in {} (use a wider dtype)", prefix_,
             t, token_dtype_name(dtype_));
    char bytes[8];
    size_t n = token_dtype_size(dtype_);
    switch (dtype_) {
      case TokenDType::UInt8: case TokenDType::Int8: bytes[0] = static_cast<char>(t); break;
      case TokenDType::Int16: case TokenDType::UInt16: {
        const auto v = static_cast<uint16_t>(t);
        std::memcpy(bytes, &v, 2);
        break;
      }
      case TokenDType::Int64: {
        const auto v = static_cast<int64_t>(t);
        std::memcpy(bytes, &v, 8);
        break;
      }
      default: std::memcpy(bytes, &t, 4); break;
    }
    buffer_.insert(buffer_.end(), bytes, bytes + n);
    if (buffer_.size() >= kBufferBytes) flush();
  }
  num_tokens_ += static_cast<int64_t>(tokens.size());
}

void IndexedDatasetBuilder::add_item(std::span<const int32_t> tokens) {
  write_tokens(tokens);
  sequence_lengths_.push_back(static_cast<int32_t>(tokens.size()));
}

void IndexedDatasetBuilder::end_document() {
  document_indices_.push_back(static_cast<int64_t>(sequence_lengths_.size()));
}

void IndexedDatasetBuilder::add_document(std::span<const int32_t> tokens, std::span<const int32_t> lengths) {
  int64_t total = 0;
  for (int32_t n : lengths) {
    NT_CHECK(n >= 0, "indexed dataset {}: negative sequence length {}", prefix_, n);
    total += n;
  }
  NT_CHECK(total == static_cast<int64_t>(tokens.size()),
           "indexed dataset {}: sequence lengths add up to {} but the document has {} tokens", prefix_, total,
           tokens.size());
  write_tokens(tokens);
  sequence_lengths_.insert(sequence_lengths_.end(), lengths.begin(), lengths.end());
  end_document();
}

void IndexedDatasetBuilder::finalize() {
  NT_CHECK(!finalized_, "indexed dataset {}: finalize called twice", prefix_);
  flush();
  const bool bin_ok = std::fflush(bin_) == 0 && ::fsync(fileno(bin_)) == 0;
  const bool closed = std::fclose(bin_) == 0;
  bin_ = nullptr;
  NT_CHECK(bin_ok && closed, "cannot write {}: {}", bin_tmp_, std::strerror(errno));

  std::string idx;
  const size_t s = sequence_lengths_.size(), d = document_indices_.size();
  idx.reserve(kHeaderSize + 12 * s + 8 * d);
  idx.append(kMagic, sizeof(kMagic));
  append_raw(idx, uint64_t{1});
  append_raw(idx, static_cast<uint8_t>(dtype_));
  append_raw(idx, static_cast<uint64_t>(s));
  append_raw(idx, static_cast<uint64_t>(d));
  idx.append(reinterpret_cast<const char*>(sequence_lengths_.data()), s * sizeof(int32_t));
  const auto itemsize = static_cast<int64_t>(token_dtype_size(dtype_));
  int64_t pointer = 0;
  for (int32_t n : sequence_lengths_) {
    append_raw(idx, pointer);
    pointer += n * itemsize;
  }
  idx.append(reinterpret_cast<const char*>(document_indices_.data()), d * sizeof(int64_t));

  std::FILE* f = std::fopen(idx_tmp_.c_str(), "wb");
  NT_CHECK(f, "cannot create {}: {}", idx_tmp_, std::strerror(errno));
  const bool written = std::fwrite(idx.data(), 1, idx.size(), f) == idx.size() && std::fflush(f) == 0 &&
                       ::fsync(fileno(f)) == 0;
  const bool idx_closed = std::fclose(f) == 0;
  NT_CHECK(written && idx_closed, "cannot write {}: {}", idx_tmp_, std::strerror(errno));
  // .bin first: a reader that finds the new .idx also finds the .bin it describes.
  NT_CHECK(std::rename(bin_tmp_.c_str(), bin_path(prefix_).c_str()) == 0, "cannot rename {} to {}: {}", bin_tmp_,
           bin_path(prefix_), std::strerror(errno));
  NT_CHECK(std::rename(idx_tmp_.c_str(), idx_path(prefix_).c_str()) == 0, "cannot rename {} to {}: {}", idx_tmp_,
           idx_path(prefix_), std::strerror(errno));
  finalized_ = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct IndexedDataset::Mapping {
  std::string path;
  const uint8_t* data = nullptr;
  size_t size = 0;

  explicit Mapping(std::string p) : path(std::move(p)) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    NT_CHECK(fd >= 0, "cannot open {}: {}", path, std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("{} is not a readable regular file", path);
    }
    size = static_cast<size_t>(st.st_size);
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        fail("cannot memory-map {} ({} bytes): {}", path, size, std::strerror(err));
      }
      data = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
  }
  ~Mapping() {
    if (data) ::munmap(const_cast<uint8_t*>(data), size);
  }
};

IndexedDataset::IndexedDataset(const std::string& prefix) : prefix_(prefix) {
  idx_ = std::make_unique<Mapping>(idx_path(prefix));
  bin_ = std::make_unique<Mapping>(bin_path(prefix));
  const std::string& ip = idx_->path;
  NT_CHECK(idx_->size >= kHeaderSize, "{}: {} bytes is too short for an index header ({} bytes); the file is "
           "truncated or not a Megatron .idx", ip, idx_->size, kHeaderSize);
  const uint8_t* h = idx_->data;
  NT_CHECK(std::memcmp(h, kMagic, sizeof(kMagic)) == 0, "{}: bad magic (not a Megatron MMIDIDX index file)", ip);
  const auto version = load<uint64_t>(h + 9);
  NT_CHECK(version == 1, "{}: index version {} is not supported (only 1)", ip, version);
  const uint8_t code = h[17];
  NT_CHECK(code >= 1 && code <= 8, "{}: unknown dtype code {} (expected 1..8)", ip, code);
  dtype_ = static_cast<TokenDType>(code);
  const auto s = load<uint64_t>(h + 18), d = load<uint64_t>(h + 26);
  const size_t room = idx_->size - kHeaderSize;
  NT_CHECK(s <= room / 12 && d <= room / 8 && 12 * s + 8 * d <= room,
           "{}: header claims {} sequences and {} document indices, which need {} bytes, but the file has {}; "
           "the file is truncated or corrupt",
           ip, s, d, kHeaderSize + 12.0 * s + 8.0 * d, idx_->size);
  const size_t expected = kHeaderSize + 12 * s + 8 * d;
  NT_CHECK(idx_->size == expected || idx_->size == expected + s,
           "{}: {} bytes, expected {} (or {} with sequence modes); the file is corrupt", ip, idx_->size, expected,
           expected + s);
  has_modes_ = idx_->size == expected + s && s > 0;
  NT_CHECK(d >= 1, "{}: document count is 0 (Megatron writes at least the leading 0)", ip);
  sequence_count_ = static_cast<int64_t>(s);
  document_count_ = static_cast<int64_t>(d);
  lengths_offset_ = kHeaderSize;
  pointers_offset_ = lengths_offset_ + 4 * s;
  documents_offset_ = pointers_offset_ + 8 * s;

  const auto itemsize = static_cast<int64_t>(token_dtype_size(dtype_));
  const auto bin_size = static_cast<int64_t>(bin_->size);
  for (int64_t i = 0; i < sequence_count_; ++i) {
    const int32_t n = sequence_length(i);
    const int64_t p = sequence_pointer(i);
    NT_CHECK(n >= 0, "{}: sequence {} has negative length {}", ip, i, n);
    NT_CHECK(p >= 0 && p % itemsize == 0 && p <= bin_size && n <= (bin_size - p) / itemsize,
             "{}: sequence {} ({} tokens at byte {}) lies outside {} ({} bytes); the .bin and .idx do not match",
             ip, i, n, p, bin_->path, bin_size);
  }
  int64_t previous = 0;
  for (int64_t k = 0; k < document_count_; ++k) {
    const int64_t v = load<int64_t>(idx_->data + documents_offset_ + 8 * k);
    NT_CHECK(k > 0 || v == 0, "{}: document indices must start with 0, found {}", ip, v);
    NT_CHECK(v >= previous && v <= sequence_count_,
             "{}: document index {} is {}, outside [{}, {}] (indices must not decrease and not pass the sequence "
             "count)",
             ip, k, v, previous, sequence_count_);
    previous = v;
  }
}

IndexedDataset::~IndexedDataset() = default;

int32_t IndexedDataset::sequence_length(int64_t i) const {
  NT_CHECK(i >= 0 && i < sequence_count_, "{}: sequence {} out of range (the dataset has {})", idx_->path, i,
           sequence_count_);
  return load<int32_t>(idx_->data + lengths_offset_ + 4 * static_cast<size_t>(i));
}

int64_t IndexedDataset::sequence_pointer(int64_t i) const {
  NT_CHECK(i >= 0 && i < sequence_count_, "{}: sequence {} out of range (the dataset has {})", idx_->path, i,
           sequence_count_);
  return load<int64_t>(idx_->data + pointers_offset_ + 8 * static_cast<size_t>(i));
}

int64_t IndexedDataset::document_index(int64_t i) const {
  NT_CHECK(i >= 0 && i < document_count_, "{}: document index {} out of range (there are {})", idx_->path, i,
           document_count_);
  return load<int64_t>(idx_->data + documents_offset_ + 8 * static_cast<size_t>(i));
}

std::vector<int64_t> IndexedDataset::document_indices() const {
  std::vector<int64_t> out(static_cast<size_t>(document_count_));
  for (int64_t k = 0; k < document_count_; ++k) out[k] = document_index(k);
  return out;
}

std::vector<int32_t> IndexedDataset::get(int64_t i, int64_t offset, int64_t length) const {
  const int32_t n = sequence_length(i);
  if (length < 0) length = n - offset;
  std::vector<int32_t> out(static_cast<size_t>(std::max<int64_t>(length, 0)));
  read(i, offset, length, out.data());
  return out;
}

void IndexedDataset::read(int64_t i, int64_t offset, int64_t length, int32_t* out) const {
  const int32_t n = sequence_length(i);
  NT_CHECK(offset >= 0 && length >= 0 && offset + length <= n,
           "{}: tokens [{}, {}) requested from sequence {} of length {}", idx_->path, offset, offset + length, i, n);
  NT_CHECK(is_integer_dtype(dtype_), "{}: dtype {} holds no token ids", idx_->path, token_dtype_name(dtype_));
  const size_t itemsize = token_dtype_size(dtype_);
  const uint8_t* p = bin_->data + sequence_pointer(i) + static_cast<size_t>(offset) * itemsize;
  for (int64_t k = 0; k < length; ++k, p += itemsize) {
    switch (dtype_) {
      case TokenDType::UInt8: out[k] = *p; break;
      case TokenDType::Int8: out[k] = static_cast<int8_t>(*p); break;
      case TokenDType::Int16: out[k] = load<int16_t>(p); break;
      case TokenDType::UInt16: out[k] = load<uint16_t>(p); break;
      case TokenDType::Int32: out[k] = load<int32_t>(p); break;
      case TokenDType::Int64: {
        const int64_t v = load<int64_t>(p);
        NT_CHECK(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
                 "{}: token {} of sequence {} is {}, beyond the int32 range", bin_->path, offset + k, i, v);
        out[k] = static_cast<int32_t>(v);
        break;
      }
      default: break;
    }
  }
}

}  // namespace nemotron::data
