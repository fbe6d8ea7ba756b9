// Megatron's MockGPTLowLevelDataset (gpt_dataset.py), the data a run uses when no data is given
// (dataset.blend, blend_per_split and data_path all null): 100,000 documents whose lengths are
// numpy.random.default_rng(seed=0).integers(1, 4096, size=100000, dtype=int32); document d holds
// (1, 2, ..., len-1) % vocab_size followed by the end-of-document id. GPTDataset cuts it into samples
// exactly as it cuts real data (MockGPTDataset), with the split "1,1,1".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/gpt_dataset.h"

namespace nemotron::data {

class MockLowLevelDataset : public LowLevelDataset {
 public:
  static constexpr int64_t kSize = 100000;
  static constexpr int64_t kMaxSequenceLength = 4096;  // exclusive bound of the lengths
  static constexpr uint64_t kSeed = 0;

  MockLowLevelDataset(int64_t vocab_size, int64_t eod_id);

  int64_t num_sequences() const override { return kSize; }
  int32_t sequence_length(int64_t i) const override { return lengths_[static_cast<size_t>(i)]; }
  int32_t max_sequence_length() const override { return max_length_; }
  void read(int64_t i, int64_t offset, int64_t length, int64_t* out) const override;
  const std::string& path_prefix() const override { return empty_; }

 private:
  int64_t vocab_size_, eod_id_;
  std::vector<int32_t> lengths_;
  int32_t max_length_ = 0;
  std::string empty_;
};

}  // namespace nemotron::data
