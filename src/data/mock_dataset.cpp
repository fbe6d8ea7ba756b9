#include "data/mock_dataset.h"

#include <algorithm>

#include "core/error.h"
#include "data/numpy_random.h"

namespace nemotron::data {

MockLowLevelDataset::MockLowLevelDataset(int64_t vocab_size, int64_t eod_id)
    : vocab_size_(vocab_size), eod_id_(eod_id) {
  NT_CHECK(vocab_size > 0, "mock data needs the tokenizer's vocabulary size, got {}", vocab_size);
  NT_CHECK(eod_id >= 0, "mock data needs the tokenizer's end-of-document id, got {}", eod_id);
  NumpyDefaultRng rng(kSeed);
  const std::vector<int64_t> lengths = rng.integers32(1, kMaxSequenceLength, kSize);
  lengths_.assign(lengths.begin(), lengths.end());
  max_length_ = *std::max_element(lengths_.begin(), lengths_.end());
}

void MockLowLevelDataset::read(int64_t i, int64_t offset, int64_t length, int64_t* out) const {
  NT_CHECK(i >= 0 && i < kSize, "mock document {} out of range", i);
  const int64_t n = lengths_[static_cast<size_t>(i)];
  NT_CHECK(offset >= 0 && length >= 0 && offset + length <= n,
           "mock document {}: tokens [{}, {}) requested of {}", i, offset, offset + length, n);
  for (int64_t k = 0; k < length; ++k) {
    const int64_t position = offset + k;
    out[k] = position == n - 1 ? eod_id_ : (position + 1) % vocab_size_;
  }
}

}  // namespace nemotron::data
