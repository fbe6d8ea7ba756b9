#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace nemotron::train {

namespace tfevents {

namespace {

constexpr uint32_t kCastagnoli = 0x82f63b78u;  // reflected CRC-32C polynomial
constexpr uint32_t kMaskDelta = 0xa282ead8u;

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoli : c >> 1;
    table[i] = c;
  }
  return table;
}

// ---- protobuf wire format ----
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (field << 3) | type); }
template <typename T>
void put_little_endian(std::string& out, T bits) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}
// Event fields 1 (wall_time) and 2 (step), omitted at their proto3 defaults.
std::string event_header(double wall_time, int64_t step) {
  std::string out;
  if (wall_time != 0.0) {
    put_key(out, 1, kFixed64);
    uint64_t bits;
    std::memcpy(&bits, &wall_time, sizeof bits);
    put_little_endian(out, bits);
  }
  if (step != 0) {
    put_key(out, 2, kVarint);
    put_varint(out, static_cast<uint64_t>(step));  // negative steps: ten-byte two's complement, as protobuf
  }
  return out;
}

}  // namespace

uint32_t crc32c(std::string_view data) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  uint32_t c = 0xffffffffu;
  for (unsigned char byte : data) c = table[(c ^ byte) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t masked_crc32c(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + kMaskDelta;
}

std::string frame_record(std::string_view data) {
  std::string length;
  put_little_endian(length, static_cast<uint64_t>(data.size()));
  std::string out = length;
  put_little_endian(out, masked_crc32c(length));
  out.append(data);
  put_little_endian(out, masked_crc32c(data));
  return out;
}

std::string file_version_event(double wall_time) {
  std::string out = event_header(wall_time, 0);
  put_bytes(out, 3, "brain.Event:2");
  return out;
}

std::string scalar_event(double wall_time, int64_t step, std::string_view tag, float value) {
  std::string summary_value;
  if (!tag.empty()) put_bytes(summary_value, 1, tag);
  put_key(summary_value, 2, kFixed32);  // simple_value sits in a oneof: written even when 0
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  put_little_endian(summary_value, bits);

  std::string summary;
  put_bytes(summary, 1, summary_value);
  std::string out = event_header(wall_time, step);
  put_bytes(out, 5, summary);
  return out;
}

}  // namespace tfevents

namespace {

double unix_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& log_dir) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  NT_CHECK(!ec && std::filesystem::is_directory(log_dir),
           "logger.tensorboard_dir: cannot create directory '{}': {}", log_dir,
           ec ? ec.message() : std::string("a file of that name exists"));
  // A counter keeps two writers of one process (and second) apart, as torch's global uid does.
  static std::atomic<int> counter{0};
  const double now = unix_time_now();
  path_ = fmt::format("{}/events.out.tfevents.{}.{}.{}.{}", log_dir, static_cast<int64_t>(now), host_name(),
                      static_cast<int64_t>(::getpid()), counter++);
  file_ = std::fopen(path_.c_str(), "wb");
  NT_CHECK(file_ != nullptr, "logger.tensorboard_dir: cannot create event file '{}': {}", path_,
           std::strerror(errno));
  write_record(tfevents::file_version_event(now));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::add_scalar(std::string_view tag, double value, int64_t step, double wall_time) {
  write_record(tfevents::scalar_event(wall_time < 0 ? unix_time_now() : wall_time, step, tag,
                                      static_cast<float>(value)));
}

void TensorBoardWriter::write_record(const std::string& event) {
  const std::string record = tfevents::frame_record(event);
  NT_CHECK(std::fwrite(record.data(), 1, record.size(), file_) == record.size(),
           "TensorBoard: cannot write to '{}': {}", path_, std::strerror(errno));
}

void TensorBoardWriter::flush() {
  NT_CHECK(std::fflush(file_) == 0, "TensorBoard: cannot write to '{}': {}", path_, std::strerror(errno));
}

}  // namespace nemotron::train
