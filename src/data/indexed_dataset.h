// Megatron indexed datasets (PREFIX.bin + PREFIX.idx), byte-compatible with Megatron-LM's
// megatron/core/datasets/indexed_dataset.py (spec/workflow.md §5.1):
//
//   .idx: b"MMIDIDX\0\0" | <Q version=1 | <B dtype code | <Q sequence count S | <Q document count D
//         | int32[S] sequence lengths (tokens) | int64[S] sequence pointers (byte offsets into .bin)
//         | int64[D] document indices (sequence index where each document ends; starts with 0)
//         | [int8[S] sequence modes, multimodal only]
//   .bin: all sequences' tokens back to back, in the dtype.
//
// The writer streams tokens to disk and keeps only the index in memory (as Megatron does); both
// files appear under their final names only when finalize() succeeds. The reader memory-maps both
// files and validates the index against the files' sizes before anything is read.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nemotron::data {

// Megatron's DType codes.
enum class TokenDType : uint8_t {
  UInt8 = 1, Int8 = 2, Int16 = 3, Int32 = 4, Int64 = 5, Float64 = 6, Float32 = 7, UInt16 = 8
};
size_t token_dtype_size(TokenDType dtype);
const char* token_dtype_name(TokenDType dtype);
// DType.optimal_dtype: uint16 when vocab_size < 65500, else int32 (preprocess_data.py).
TokenDType optimal_token_dtype(int64_t vocab_size);

std::string idx_path(const std::string& prefix);  // PREFIX.idx
std::string bin_path(const std::string& prefix);  // PREFIX.bin

class IndexedDatasetBuilder {
 public:
  // Writes PREFIX.bin and PREFIX.idx (under temporary names until finalize()). Only the integer
  // dtypes UInt8 ... Int64 and UInt16 can be written.
  IndexedDatasetBuilder(std::string prefix, TokenDType dtype);
  ~IndexedDatasetBuilder();  // without finalize(): removes the temporary files
  IndexedDatasetBuilder(const IndexedDatasetBuilder&) = delete;
  IndexedDatasetBuilder& operator=(const IndexedDatasetBuilder&) = delete;

  // One sequence (Megatron add_item). Tokens outside the dtype's range are an error.
  void add_item(std::span<const int32_t> tokens);
  // Closes the current document (Megatron end_document).
  void end_document();
  // A whole document made of sequences of the given lengths (Megatron add_document); empty
  // `lengths` adds a document with no sequences, as Megatron does for empty texts.
  void add_document(std::span<const int32_t> tokens, std::span<const int32_t> lengths);
  // Writes the index and publishes both files (rename over any existing ones).
  void finalize();

  int64_t num_sequences() const { return static_cast<int64_t>(sequence_lengths_.size()); }
  int64_t num_documents() const { return static_cast<int64_t>(document_indices_.size()) - 1; }
  int64_t num_tokens() const { return num_tokens_; }

 private:
  void write_tokens(std::span<const int32_t> tokens);
  void flush();

  std::string prefix_, bin_tmp_, idx_tmp_;
  TokenDType dtype_;
  std::FILE* bin_ = nullptr;
  std::vector<char> buffer_;
  std::vector<int32_t> sequence_lengths_;
  std::vector<int64_t> document_indices_{0};
  int64_t num_tokens_ = 0;
  bool finalized_ = false;
};

// Read-only, memory-mapped view of PREFIX.bin/.idx. Opening checks the magic, version, dtype,
// counts, that every array fits in the .idx, that every sequence lies inside the .bin and that the
// document indices are non-decreasing from 0 to at most S; a violation is a nemotron::Error naming
// the file and what is wrong.
class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return sequence_count_; }
  int64_t num_documents() const { return document_count_ - 1; }  // Megatron: document_indices.size - 1
  bool has_modes() const { return has_modes_; }

  int32_t sequence_length(int64_t i) const;
  int64_t sequence_pointer(int64_t i) const;  // byte offset into .bin
  int64_t document_index(int64_t i) const;    // i in [0, num_documents()]
  std::vector<int64_t> document_indices() const;

  // Tokens [offset, offset + length) of sequence i (Megatron get(idx, offset, length)); length < 0
  // means "to the end of the sequence". Float datasets cannot be read as tokens.
  std::vector<int32_t> get(int64_t i, int64_t offset = 0, int64_t length = -1) const;
  void read(int64_t i, int64_t offset, int64_t length, int32_t* out) const;

 private:
  struct Mapping;
  std::string prefix_;
  std::unique_ptr<Mapping> idx_, bin_;
  TokenDType dtype_ = TokenDType::Int32;
  int64_t sequence_count_ = 0, document_count_ = 0;
  size_t lengths_offset_ = 0, pointers_offset_ = 0, documents_offset_ = 0;
  bool has_modes_ = false;
};

}  // namespace nemotron::data
