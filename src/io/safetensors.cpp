#include "io/safetensors.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/strings.h"
#include "io/file_util.h"
#include "io/json.h"

namespace nemotron::io {

// ---------------------------------------------------------------- dtypes

std::string_view safetensors_dtype_name(DType t) { return t == DType::F4_E2M1 ? "F4" : dtype_name(t); }

namespace {

std::optional<DType> parse_safetensors_dtype(std::string_view s) {
  if (s == "F4") return DType::F4_E2M1;
  for (DType t : kAllDTypes)
    if (dtype_name(t) == s) return t;
  return std::nullopt;
}

std::string supported_dtype_list() {
  std::string out;
  for (DType t : kAllDTypes) {
    if (!out.empty()) out += ", ";
    out += safetensors_dtype_name(t);
  }
  return out;
}

// Position in the Rust safetensors `Dtype` enum (BOOL < F4 < U8 < I8 < F8_E5M2 < F8_E4M3 < I16 < F16
// < BF16 < I32 < F32 < F64 < I64, with types we lack left out). The writer orders tensors by this,
// descending, then by name — measured against safetensors 0.8's output.
int safetensors_dtype_rank(DType t) {
  switch (t) {
    case DType::Bool: return 0;
    case DType::F4_E2M1: return 1;
    case DType::U8: return 2;
    case DType::I8: return 3;
    case DType::F8_E5M2: return 4;
    case DType::F8_E4M3: return 5;
    case DType::I16: return 6;
    case DType::F16: return 7;
    case DType::BF16: return 8;
    case DType::I32: return 9;
    case DType::F32: return 10;
    case DType::F64: return 11;
    case DType::I64: return 12;
  }
  return -1;
}

// Bytes for `numel` elements, or nullopt on overflow.
std::optional<uint64_t> checked_nbytes(DType t, uint64_t numel) {
  int bits = dtype_bits(t);
  if (bits == 4) return numel / 2 + numel % 2;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(bits / 8), &bytes)) return std::nullopt;
  return bytes;
}

std::optional<uint64_t> checked_numel(const Shape& shape) {
  uint64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
  return n;
}

// ---------------------------------------------------------------- header validation

// RFC 3629 UTF-8 (no overlongs, no surrogates, at most U+10FFFF). Returns the offset of the first
// bad byte, or npos.
size_t find_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// The raw (still escaped) key literals of a well-formed JSON object, in order. json::parse merges
// duplicate keys (the last wins, as Python does), so duplicates are found on the raw text.
std::vector<std::string_view> top_level_key_literals(std::string_view text) {
  std::vector<std::string_view> keys;
  int depth = 0;
  bool expect_key = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      size_t start = i++;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      if (depth == 1 && expect_key) keys.push_back(text.substr(start, i - start + 1));
      expect_key = false;
    } else if (c == '{' || c == '[') {
      ++depth;
      expect_key = depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 1) {
      expect_key = true;
    }
  }
  return keys;
}

// A non-negative JSON integer as u64, with errors naming `what`.
uint64_t parse_u64(const json::Value& v, const std::string& where, std::string_view what) {
  NT_CHECK(v.kind() == json::Value::Kind::Number, "{}: {} must be a non-negative integer, got a JSON {}", where, what,
           json::Value::kind_name(v.kind()));
  const std::string& text = v.number_text();
  NT_CHECK(!text.empty() && text[0] != '-', "{}: {} must be a non-negative integer, got {}", where, what, text);
  uint64_t out = 0;
  for (char c : text) {
    NT_CHECK(c >= '0' && c <= '9', "{}: {} must be a non-negative integer, got {}", where, what, text);
    NT_CHECK(!__builtin_mul_overflow(out, uint64_t{10}, &out) && !__builtin_add_overflow(out, uint64_t(c - '0'), &out),
             "{}: {} = {} is too large", where, what, text);
  }
  return out;
}

struct Header {
  std::vector<SafetensorsEntry> entries;  // data order
  SafetensorsMetadata metadata;
};

SafetensorsMetadata parse_metadata(const json::Value& v, const std::string& path) {
  SafetensorsMetadata out;
  if (v.is_null()) return out;
  NT_CHECK(v.is_object(), "{}: __metadata__ must be an object of strings, got a JSON {}", path,
           json::Value::kind_name(v.kind()));
  for (const auto& [key, value] : v.members()) {
    NT_CHECK(value.is_string(), "{}: __metadata__ entry '{}' must be a string, got a JSON {}", path, key,
             json::Value::kind_name(value.kind()));
    out[key] = value.as_string();
  }
  return out;
}

SafetensorsEntry parse_entry(const std::string& name, const json::Value& v, uint64_t data_size,
                             const std::string& path) {
  const std::string where = fmt::format("{}: tensor '{}'", path, name);
  NT_CHECK(v.is_object(), "{}: header entry must be an object with dtype, shape and data_offsets, got a JSON {}", where,
           json::Value::kind_name(v.kind()));
  SafetensorsEntry e;
  e.name = name;

  const json::Value* dtype = v.find("dtype");
  NT_CHECK(dtype != nullptr, "{}: header entry has no \"dtype\"", where);
  NT_CHECK(dtype->is_string(), "{}: \"dtype\" must be a string, got a JSON {}", where,
           json::Value::kind_name(dtype->kind()));
  std::optional<DType> t = parse_safetensors_dtype(dtype->as_string());
  NT_CHECK(t.has_value(), "{}: unsupported dtype \"{}\" (supported: {})", where, dtype->as_string(),
           supported_dtype_list());
  e.dtype = *t;

  const json::Value* shape = v.find("shape");
  NT_CHECK(shape != nullptr, "{}: header entry has no \"shape\"", where);
  NT_CHECK(shape->is_array(), "{}: \"shape\" must be an array of integers, got a JSON {}", where,
           json::Value::kind_name(shape->kind()));
  for (size_t i = 0; i < shape->items().size(); ++i) {
    uint64_t d = parse_u64(shape->items()[i], where, fmt::format("shape[{}]", i));
    NT_CHECK(d <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "{}: shape[{}] = {} is too large", where,
             i, d);
    e.shape.push_back(static_cast<int64_t>(d));
  }

  const json::Value* offsets = v.find("data_offsets");
  NT_CHECK(offsets != nullptr, "{}: header entry has no \"data_offsets\"", where);
  NT_CHECK(offsets->is_array() && offsets->size() == 2, "{}: \"data_offsets\" must be an array [begin, end]", where);
  e.begin = parse_u64(offsets->items()[0], where, "data_offsets[0]");
  e.end = parse_u64(offsets->items()[1], where, "data_offsets[1]");
  NT_CHECK(e.begin <= e.end, "{}: data_offsets [{}, {}] end before they begin (corrupt header)", where, e.begin, e.end);
  NT_CHECK(e.end <= data_size,
           "{}: data_offsets [{}, {}] reach past the end of the data region ({} bytes); the file is truncated or "
           "corrupt",
           where, e.begin, e.end, data_size);

  std::optional<uint64_t> numel = checked_numel(e.shape);
  NT_CHECK(numel.has_value(), "{}: shape {} has too many elements (overflow)", where, shape_str(e.shape));
  std::optional<uint64_t> expected = checked_nbytes(e.dtype, *numel);
  NT_CHECK(expected.has_value(), "{}: shape {} is too large for {}", where, shape_str(e.shape),
           safetensors_dtype_name(e.dtype));
  NT_CHECK(e.nbytes() == *expected,
           "{}: data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {} bytes (corrupt header)", where, e.begin,
           e.end, e.nbytes(), shape_str(e.shape), safetensors_dtype_name(e.dtype), *expected);
  return e;
}

Header parse_header(std::string_view text, uint64_t data_size, const std::string& path) {
  size_t bad = find_invalid_utf8(text);
  NT_CHECK(bad == std::string_view::npos, "{}: header is not valid UTF-8 (byte {} of the header); the file is corrupt",
           path, bad);
  json::Value root;
  try {
    root = json::parse(text, path + " (safetensors header)");
  } catch (const std::exception& e) {
    fail("{}: the header is not valid JSON; the file is corrupt or not a safetensors file: {}", path, e.what());
  }
  NT_CHECK(root.is_object(), "{}: the header must be a JSON object, got a JSON {}", path,
           json::Value::kind_name(root.kind()));

  std::vector<std::string_view> literals = top_level_key_literals(text);
  if (literals.size() != root.size()) {
    std::unordered_set<std::string> seen;
    for (std::string_view lit : literals) {
      std::string key = json::parse(lit).as_string();
      NT_CHECK(seen.insert(key).second, "{}: tensor '{}' appears twice in the header (corrupt file)", path, key);
    }
  }

  Header h;
  for (const auto& [name, value] : root.members()) {
    if (name == "__metadata__")
      h.metadata = parse_metadata(value, path);
    else
      h.entries.push_back(parse_entry(name, value, data_size, path));
  }
  std::sort(h.entries.begin(), h.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Non-empty ranges must not overlap: in offset order, each starts at or after the furthest end so far.
  const SafetensorsEntry* furthest = nullptr;
  for (const SafetensorsEntry& e : h.entries) {
    if (e.nbytes() == 0) continue;
    NT_CHECK(furthest == nullptr || e.begin >= furthest->end,
             "{}: tensor '{}' (bytes [{}, {})) overlaps tensor '{}' (bytes [{}, {})); the header is corrupt", path,
             e.name, e.begin, e.end, furthest->name, furthest->begin, furthest->end);
    if (furthest == nullptr || e.end > furthest->end) furthest = &e;
  }
  return h;
}

uint64_t read_le_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

// ---------------------------------------------------------------- SafetensorsFile

struct SafetensorsFile::Impl {
  std::string path;
  uint64_t file_size = 0;
  uint64_t data_start = 0;
  std::vector<SafetensorsEntry> entries;
  std::unordered_map<std::string, size_t> by_name;
  SafetensorsMetadata metadata;

  std::mutex map_mutex;
  std::shared_ptr<MappedFile> map;

  std::shared_ptr<MappedFile> mapping() {
    std::lock_guard<std::mutex> lock(map_mutex);
    if (!map) {
      auto m = MappedFile::open(path);
      NT_CHECK(m->size() == file_size, "{} changed on disk since it was opened ({} bytes, now {}); reopen it", path,
               file_size, m->size());
      map = std::move(m);
    }
    return map;
  }
};

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  NT_CHECK(!is_directory(path), "{} is a directory, not a safetensors file", path);
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  impl->file_size = file_size(path);
  NT_CHECK(impl->file_size >= 8,
           "{}: file is {} bytes, too small for a safetensors file (8-byte header length + header); it is truncated "
           "or not a safetensors file",
           path, impl->file_size);
  std::string prefix = read_file_range(path, 0, 8);
  NT_CHECK(prefix.size() == 8, "{}: file shrank while being read", path);
  uint64_t header_len = read_le_u64(prefix.data());
  NT_CHECK(header_len <= kSafetensorsMaxHeaderBytes,
           "{}: header length field says {} bytes, more than safetensors' limit of {}; the file is corrupt or not a "
           "safetensors file",
           path, header_len, kSafetensorsMaxHeaderBytes);
  NT_CHECK(header_len <= impl->file_size - 8,
           "{}: header length field says {} bytes, but only {} bytes follow it; the file is truncated or corrupt", path,
           header_len, impl->file_size - 8);
  std::string text = read_file_range(path, 8, static_cast<size_t>(header_len));
  NT_CHECK(text.size() == header_len, "{}: file shrank while being read", path);

  impl->data_start = 8 + header_len;
  Header h = parse_header(text, impl->file_size - impl->data_start, path);
  impl->entries = std::move(h.entries);
  impl->metadata = std::move(h.metadata);
  for (size_t i = 0; i < impl->entries.size(); ++i) impl->by_name.emplace(impl->entries[i].name, i);
  SafetensorsFile f;
  f.impl_ = std::move(impl);
  return f;
}

const std::string& SafetensorsFile::path() const { return impl_->path; }
const std::vector<SafetensorsEntry>& SafetensorsFile::entries() const { return impl_->entries; }
const SafetensorsMetadata& SafetensorsFile::metadata() const { return impl_->metadata; }
uint64_t SafetensorsFile::data_start() const { return impl_->data_start; }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->entries.size());
  for (const auto& e : impl_->entries) out.push_back(e.name);
  std::sort(out.begin(), out.end());
  return out;
}

bool SafetensorsFile::contains(std::string_view name) const {
  return impl_->by_name.count(std::string(name)) != 0;
}

const SafetensorsEntry& SafetensorsFile::entry(std::string_view name) const {
  auto it = impl_->by_name.find(std::string(name));
  if (it == impl_->by_name.end()) fail("{}: no tensor named '{}'{}", impl_->path, name, did_you_mean(name, names()));
  return impl_->entries[it->second];
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const SafetensorsEntry& e = entry(name);
  std::shared_ptr<MappedFile> map = impl_->mapping();
  uint8_t* p = map->data() + impl_->data_start + e.begin;
  size_t element_bytes = static_cast<size_t>(std::max(1, dtype_bits(e.dtype) / 8));
  if (reinterpret_cast<uintptr_t>(p) % element_bytes == 0) return Tensor::from_blob(p, e.shape, e.dtype, map);
  Tensor copy = Tensor::empty(e.shape, e.dtype);
  std::memcpy(copy.raw_data(), p, e.nbytes());
  return copy;
}

// ---------------------------------------------------------------- writing

std::vector<SafetensorsEntry> safetensors_layout(std::vector<TensorDecl> tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorDecl& a, const TensorDecl& b) {
    int ra = safetensors_dtype_rank(a.dtype), rb = safetensors_dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
  std::vector<SafetensorsEntry> entries;
  entries.reserve(tensors.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorDecl& d = tensors[i];
    NT_CHECK(d.name != "__metadata__", "cannot write a tensor named '__metadata__' (reserved by safetensors)");
    for (int64_t dim : d.shape) NT_CHECK(dim >= 0, "tensor '{}': negative dimension in shape {}", d.name, shape_str(d.shape));
    std::optional<uint64_t> numel = checked_numel(d.shape);
    std::optional<uint64_t> nbytes = numel ? checked_nbytes(d.dtype, *numel) : std::nullopt;
    NT_CHECK(nbytes.has_value(), "tensor '{}': shape {} is too large", d.name, shape_str(d.shape));
    entries.push_back({std::move(d.name), d.dtype, std::move(d.shape), offset, offset + *nbytes});
    offset += *nbytes;
  }
  std::unordered_set<std::string_view> seen;
  for (const auto& e : entries) NT_CHECK(seen.insert(e.name).second, "tensor '{}' is declared twice", e.name);
  return entries;
}

std::string safetensors_header(const std::vector<SafetensorsEntry>& entries, const SafetensorsMetadata& metadata) {
  std::string out = "{";
  bool first = true;
  if (!metadata.empty()) {
    // Python's writer emits metadata in hash-map order (it varies run to run); sorted is reproducible.
    out += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      if (!first) out += ',';
      first = false;
      out += json::quote(key);
      out += ':';
      out += json::quote(value);
    }
    out += '}';
    first = false;
  }
  for (const auto& e : entries) {
    if (!first) out += ',';
    first = false;
    out += json::quote(e.name);
    out += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", safetensors_dtype_name(e.dtype),
                       fmt::join(e.shape, ","), e.begin, e.end);
  }
  out += '}';
  out.append((8 - out.size() % 8) % 8, ' ');  // the data region starts 8-byte aligned
  return out;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorDecl> tensors, SafetensorsMetadata metadata)
    : path_(std::move(path)) {
  try {
    entries_ = safetensors_layout(std::move(tensors));
  } catch (const Error& e) {
    fail("{}: {}", path_, e.what());
  }
  written_.assign(entries_.size(), false);
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
  std::string header = safetensors_header(entries_, metadata);
  NT_CHECK(header.size() <= kSafetensorsMaxHeaderBytes,
           "{}: the header would be {} bytes, more than safetensors' limit of {}; split the tensors over more files",
           path_, header.size(), kSafetensorsMaxHeaderBytes);
  data_start_ = 8 + header.size();
  file_ = std::make_unique<AtomicFile>(path_);
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  file_->append(len, 8);
  file_->append(header);
}

SafetensorsWriter::~SafetensorsWriter() = default;

size_t SafetensorsWriter::index_of(std::string_view name) const {
  auto it = index_.find(std::string(name));
  if (it != index_.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& e : entries_) names.push_back(e.name);
  fail("{}: tensor '{}' was not declared when the writer was created{}", path_, name, did_you_mean(name, names));
}

void SafetensorsWriter::write_bytes(std::string_view name, const void* data, size_t nbytes) {
  NT_CHECK(file_ != nullptr, "{}: write after finish()", path_);
  size_t i = index_of(name);
  const SafetensorsEntry& e = entries_[i];
  NT_CHECK(!written_[i], "{}: tensor '{}' written twice", path_, name);
  NT_CHECK(nbytes == e.nbytes(), "{}: tensor '{}' needs {} bytes, got {}", path_, name, e.nbytes(), nbytes);
  file_->write_at(data_start_ + e.begin, data, nbytes);
  written_[i] = true;
}

void SafetensorsWriter::write(std::string_view name, const Tensor& t) {
  NT_CHECK(file_ != nullptr, "{}: write after finish()", path_);
  const SafetensorsEntry& e = entries_[index_of(name)];
  NT_CHECK(t.defined(), "{}: tensor '{}' is undefined", path_, name);
  NT_CHECK(t.dtype() == e.dtype && t.shape() == e.shape, "{}: tensor '{}' was declared {}{} but is {}{}", path_, name,
           dtype_name(e.dtype), shape_str(e.shape), dtype_name(t.dtype()), shape_str(t.shape()));
  Tensor host = t.to(Device::cpu()).contiguous();
  write_bytes(name, e.nbytes() ? host.raw_data() : nullptr, e.nbytes());
}

void SafetensorsWriter::finish() {
  NT_CHECK(file_ != nullptr, "{}: finish() called twice", path_);
  for (size_t i = 0; i < entries_.size(); ++i)
    NT_CHECK(written_[i], "{}: tensor '{}' was declared but never written; the file was not saved", path_,
             entries_[i].name);
  file_->commit();
  file_.reset();
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const SafetensorsMetadata& metadata) {
  std::vector<TensorDecl> decls;
  decls.reserve(tensors.size());
  for (const auto& [name, t] : tensors) decls.push_back({name, t.dtype(), t.shape()});
  SafetensorsWriter w(path, std::move(decls), metadata);
  for (const auto& [name, t] : tensors) w.write(name, t);
  w.finish();
}

}  // namespace nemotron::io
