#include "data/npy.h"

#include <charconv>
#include <cstring>

#include "core/error.h"
#include "io/file_util.h"

namespace nemotron::data {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;
// numpy leaves room for the first dimension to grow to 21 digits without rewriting the file.
constexpr size_t kGrowthAxisDigits = 21;

std::string shape_repr(const std::vector<int64_t>& shape) {  // Python's repr of a tuple
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// Reads the value after `'key': ` in the header dict.
std::string_view dict_value(std::string_view dict, std::string_view key, const std::string& path) {
  const std::string needle = "'" + std::string(key) + "':";
  const size_t at = dict.find(needle);
  NT_CHECK(at != std::string_view::npos, "{}: the .npy header has no '{}' entry: {}", path, key, dict);
  std::string_view rest = dict.substr(at + needle.size());
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  size_t end;
  if (!rest.empty() && rest.front() == '(') {
    end = rest.find(')');
    NT_CHECK(end != std::string_view::npos, "{}: unterminated shape in the .npy header", path);
    ++end;
  } else if (!rest.empty() && rest.front() == '\'') {
    end = rest.find('\'', 1);
    NT_CHECK(end != std::string_view::npos, "{}: unterminated string in the .npy header", path);
    ++end;
  } else {
    end = rest.find_first_of(",}");
    NT_CHECK(end != std::string_view::npos, "{}: malformed .npy header: {}", path, dict);
  }
  return rest.substr(0, end);
}

NpyType parse_descr(std::string_view descr, const std::string& path) {
  for (NpyType t : {NpyType::Int16, NpyType::Int32, NpyType::Int64, NpyType::UInt32}) {
    if (descr == "'" + std::string(npy_descr(t)) + "'") return t;
  }
  fail("{}: unsupported .npy element type {} (expected little-endian int16/int32/int64/uint32 "
       "index arrays); delete the file to rebuild it", path, descr);
}

std::vector<int64_t> parse_shape(std::string_view text, const std::string& path) {
  NT_CHECK(text.size() >= 2 && text.front() == '(' && text.back() == ')', "{}: malformed .npy shape {}", path, text);
  std::vector<int64_t> shape;
  std::string_view inner = text.substr(1, text.size() - 2);
  while (!inner.empty()) {
    while (!inner.empty() && (inner.front() == ' ' || inner.front() == ',')) inner.remove_prefix(1);
    if (inner.empty()) break;
    int64_t dim = -1;
    auto [ptr, ec] = std::from_chars(inner.data(), inner.data() + inner.size(), dim);
    NT_CHECK(ec == std::errc() && dim >= 0, "{}: malformed .npy shape {}", path, text);
    shape.push_back(dim);
    inner.remove_prefix(static_cast<size_t>(ptr - inner.data()));
  }
  return shape;
}

}  // namespace

const char* npy_descr(NpyType type) {
  switch (type) {
    case NpyType::Int16: return "<i2";
    case NpyType::Int32: return "<i4";
    case NpyType::Int64: return "<i8";
    case NpyType::UInt32: return "<u4";
  }
  return "?";
}

size_t npy_itemsize(NpyType type) {
  switch (type) {
    case NpyType::Int16: return 2;
    case NpyType::Int32: case NpyType::UInt32: return 4;
    case NpyType::Int64: return 8;
  }
  return 0;
}

std::string npy_header(NpyType type, const std::vector<int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + npy_descr(type) + "', 'fortran_order': False, 'shape': " +
                     shape_repr(shape) + ", }";
  if (!shape.empty()) {
    const size_t digits = std::to_string(shape[0]).size();
    if (digits < kGrowthAxisDigits) dict.append(kGrowthAxisDigits - digits, ' ');
  }
  // As numpy's _wrap_header: pad so that magic + version + length + dict + '\n' is a multiple of 64
  // (a whole extra block when it already is).
  const size_t prefix = kMagicLen + 2 + 2;
  const size_t pad = kAlign - (prefix + dict.size() + 1) % kAlign;
  dict.append(pad, ' ');
  dict += '\n';
  NT_CHECK(dict.size() <= 0xffff, ".npy header too long for format 1.0");
  std::string out(kMagic, kMagicLen);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict;
}

int64_t NpyArray::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

void NpyArray::check_size(int64_t count) const {
  NT_CHECK(count == element_count(), "array of {} elements does not match shape {}", count, shape_repr(shape_));
}

NpyArray NpyArray::load(const std::string& path) {
  auto file = io::MappedFile::open(path);
  const uint8_t* p = file->data();
  const size_t size = file->size();
  NT_CHECK(size >= kMagicLen + 4 && std::memcmp(p, kMagic, kMagicLen) == 0,
           "{}: not a .npy file (bad magic); delete it to rebuild it", path);
  const int major = p[kMagicLen];
  size_t header_len, header_start;
  if (major == 1) {
    header_len = p[8] | (size_t{p[9]} << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    NT_CHECK(size >= 12, "{}: truncated .npy header", path);
    header_len = p[8] | (size_t{p[9]} << 8) | (size_t{p[10]} << 16) | (size_t{p[11]} << 24);
    header_start = 12;
  } else {
    fail("{}: unsupported .npy format version {}", path, major);
  }
  NT_CHECK(header_start + header_len <= size, "{}: truncated .npy header ({} bytes, header says {})", path, size,
           header_start + header_len);
  const std::string_view dict(reinterpret_cast<const char*>(p + header_start), header_len);

  NpyArray a;
  a.type_ = parse_descr(dict_value(dict, "descr", path), path);
  NT_CHECK(dict_value(dict, "fortran_order", path) == "False", "{}: Fortran-ordered .npy arrays are not supported",
           path);
  a.shape_ = parse_shape(dict_value(dict, "shape", path), path);
  const size_t offset = header_start + header_len;
  const uint64_t nbytes = static_cast<uint64_t>(a.element_count()) * npy_itemsize(a.type_);
  NT_CHECK(offset + nbytes <= size, "{}: truncated .npy file: {} bytes of data expected, {} present", path, nbytes,
           size - offset);
  a.data_ = p + offset;
  a.owner_ = std::move(file);
  return a;
}

void NpyArray::save(const std::string& path) const {
  io::AtomicFile out(path);
  out.append(npy_header(type_, shape_));
  const size_t nbytes = static_cast<size_t>(element_count()) * npy_itemsize(type_);
  if (nbytes) out.append(data_, nbytes);
  out.commit();
}

}  // namespace nemotron::data
