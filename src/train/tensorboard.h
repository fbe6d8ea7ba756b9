// TensorBoard event files without TensorFlow or a protobuf library.
//
// A file `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>` (the name torch's SummaryWriter
// uses; TensorBoard reads any file whose name contains "tfevents") is a sequence of TFRecords:
//     u64 length (little-endian) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
// with masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xa282ead8. Each record's data is a
// serialized tensorflow.Event; the first holds file_version "brain.Event:2", then one event per
// scalar, as torch.utils.tensorboard.SummaryWriter.add_scalar writes them.
//
// The protobuf fields we encode (tensorflow/core/util/event.proto, .../framework/summary.proto):
//   Event:          1 wall_time double (wire type 1, fixed64)    2 step int64 (wire type 0, varint)
//                   3 file_version string (wire type 2)          5 summary Summary (wire type 2)
//   Summary:        1 value repeated Summary.Value (wire type 2)
//   Summary.Value:  1 tag string (wire type 2)                   2 simple_value float (wire type 5, fixed32)
// Fields are written in field-number order and proto3 defaults (wall_time 0, step 0) are omitted,
// as Python's protobuf does, so the bytes equal those of TensorBoard's own writer.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace nemotron::train {

namespace tfevents {
// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), as TFRecord uses it.
uint32_t crc32c(std::string_view data);
uint32_t masked_crc32c(std::string_view data);
// One TFRecord holding `data`.
std::string frame_record(std::string_view data);
// Serialized Event messages.
std::string file_version_event(double wall_time);
std::string scalar_event(double wall_time, int64_t step, std::string_view tag, float value);
}  // namespace tfevents

class TensorBoardWriter {
 public:
  // Creates `log_dir` (with parents) and a new event file in it, starting with the file_version
  // record. Errors say which directory or file could not be written.
  explicit TensorBoardWriter(const std::string& log_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Appends one scalar (as fp32, TensorBoard's simple_value). wall_time < 0: the current time.
  void add_scalar(std::string_view tag, double value, int64_t step, double wall_time = -1.0);
  // Pushes buffered records to the file (call once per logged iteration).
  void flush();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  void write_record(const std::string& event);
};

}  // namespace nemotron::train
