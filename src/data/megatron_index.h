// The index-building algorithms of Megatron-Core's data pipeline (megatron/core/datasets:
// blended_megatron_dataset_config.py, blended_megatron_dataset_builder.py, gpt_dataset.py, utils.py,
// helpers.cpp), reproduced step for step so that the same inputs give the same arrays — the data order
// of a run is then the order Megatron would use (DESIGN.md principle 7). Checked against arrays a
// Python transcription of these algorithms produced with NumPy (tools/make_data_reference.py).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/npy.h"
#include "data/numpy_random.h"

namespace nemotron::data {

enum class Split { Train = 0, Valid = 1, Test = 2 };
inline constexpr std::array<Split, 3> kSplits = {Split::Train, Split::Valid, Split::Test};
const char* split_name(Split split);  // "train", "valid", "test" (Megatron's Split enum names)

// numpy.sum of a float64 vector (pairwise summation, as NumPy adds) and utils.normalize (w / sum).
double numpy_sum(const std::vector<double>& values);
std::vector<double> normalize_weights(const std::vector<double>& weights);

// ---- Splits -----------------------------------------------------------------------------------------

// parse_and_normalize_split: every run of [.0-9] in `split` is a number; missing entries are 0;
// more than three, an unparsable number or an all-zero split is an error naming the string.
std::array<double, 3> parse_and_normalize_split(std::string_view split);

// convert_split_vector_to_split_matrix: the [begin, end) fraction of the dataset each split uses, or
// nullopt where the split is empty. Megatron writes the first bound as the integer 0, which matters
// only for the cache description.
using SplitMatrix = std::array<std::optional<std::pair<double, double>>, 3>;
SplitMatrix split_matrix_from_vector(const std::array<double, 3>& vector);

// The documents [round(begin * n), round(end * n)) of a split (Python's round: half to even).
std::pair<int64_t, int64_t> split_document_range(const std::pair<double, double>& bounds, int64_t num_elements);

// ---- GPTDataset indices -----------------------------------------------------------------------------

// _get_num_epochs: the fewest epochs whose tokens cover num_samples * seq_length + add_extra tokens
// (1 without a sample count).
int64_t gpt_num_epochs(int64_t tokens_per_epoch, std::optional<int64_t> num_samples, int64_t seq_length,
                       bool add_extra_token);

// The separate-final-epoch decision of _build_document_sample_shuffle_indices: with more than one
// epoch, the last epoch is shuffled on its own when it contributes fewer than int(0.8 x) of an
// epoch's x samples. Returns the number of samples before the final epoch when it is separate.
std::optional<int64_t> gpt_separate_final_epoch(int64_t num_epochs, int64_t tokens_per_epoch,
                                                int64_t num_samples, int64_t seq_length, bool add_extra_token);

// _build_document_index: the document ids repeated num_epochs times, shuffled with `rng` (the last
// epoch shuffled separately when `separate_final_epoch`). int32, as Megatron stores it.
std::vector<int32_t> build_document_index(const std::vector<int32_t>& documents, int64_t num_epochs,
                                          NumpyRandomState& rng, bool separate_final_epoch);

// helpers.cpp build_sample_idx: [num_samples + 1, 2] (position in document_index, token offset) of
// each sample's start. Stored as int32 when max(len(document_index), max sequence length) fits in
// int32, else int64 (helpers.py). `sequence_lengths(i)` is the length of sequence i.
template <typename LengthFn>
NpyArray build_sample_index(LengthFn sequence_lengths, int64_t max_sequence_length,
                            const std::vector<int32_t>& document_index, int64_t seq_length, int64_t num_epochs,
                            int64_t tokens_per_epoch, bool drop_last_partial_sequence, bool add_extra_token);

// The sample count build_sample_idx produces (GPTDataset.__len__ without building the index).
int64_t gpt_sample_count(int64_t num_epochs, int64_t tokens_per_epoch, int64_t seq_length,
                         bool drop_last_partial_sequence, bool add_extra_token);

// _build_shuffle_index: arange(num_samples) shuffled, then (when total_size > num_samples)
// arange(num_samples, total_size) shuffled on its own. uint32 unless total_size >= 2^32 - 2, then int64.
NpyArray build_shuffle_index(int64_t num_samples, int64_t total_size, NumpyRandomState& rng);

// ---- Blending ---------------------------------------------------------------------------------------

// helpers.cpp build_blending_indices: for each of `size` samples, the dataset whose share lags its
// weight most (ties to the lower index), and that dataset's running sample count.
void build_blending_indices(const std::vector<double>& weights, int64_t size, std::vector<int16_t>& dataset_index,
                            std::vector<int64_t>& dataset_sample_index);
// helpers.cpp build_exhaustive_blending_indices: exactly sizes[d] samples from each dataset d.
void build_exhaustive_blending_indices(const std::vector<int64_t>& sizes, std::vector<int16_t>& dataset_index,
                                       std::vector<int64_t>& dataset_sample_index);

// _get_size_per_split_per_dataset: ceil(ceil(target * weight) * (1 + surplus)) per dataset and split.
std::vector<std::array<int64_t, 3>> size_per_split_per_dataset(const std::vector<double>& normalized_weights,
                                                               const std::array<int64_t, 3>& target_sizes,
                                                               double surplus);

// ---- template implementation --------------------------------------------------------------------------

[[noreturn]] void fail_sample_index(int64_t sample, int64_t num_samples);

template <typename T, typename LengthFn>
std::vector<T> fill_sample_index(LengthFn sequence_lengths, const std::vector<int32_t>& document_index,
                                 int64_t seq_length, int64_t num_samples, int64_t extra) {
  const auto num_docs = static_cast<int64_t>(document_index.size());
  std::vector<T> index(static_cast<size_t>(2 * (num_samples + 1)));
  int64_t position = 0;  // into document_index
  int64_t offset = 0;    // token offset into that document
  for (int64_t sample = 1; sample <= num_samples; ++sample) {
    int64_t remaining = seq_length + extra;
    while (remaining != 0) {
      const int64_t length = sequence_lengths(document_index[static_cast<size_t>(position)]) - offset;
      remaining -= length;
      if (remaining <= 0) {
        // The sample ends inside this document; the next one starts on its last token (the overlap).
        offset += remaining + length - extra;
        remaining = 0;
      } else {
        if (position == num_docs - 1) {
          // Out of documents: only the partial last sample (drop_last_partial_sequence off) gets here.
          if (sample != num_samples) fail_sample_index(sample, num_samples);
          offset = sequence_lengths(document_index[static_cast<size_t>(position)]) - extra;
          break;
        }
        ++position;
        offset = 0;
      }
    }
    index[static_cast<size_t>(2 * sample)] = static_cast<T>(position);
    index[static_cast<size_t>(2 * sample + 1)] = static_cast<T>(offset);
  }
  return index;
}

template <typename LengthFn>
NpyArray build_sample_index(LengthFn sequence_lengths, int64_t max_sequence_length,
                            const std::vector<int32_t>& document_index, int64_t seq_length, int64_t num_epochs,
                            int64_t tokens_per_epoch, bool drop_last_partial_sequence, bool add_extra_token) {
  const int64_t extra = add_extra_token ? 1 : 0;
  const int64_t num_samples =
      gpt_sample_count(num_epochs, tokens_per_epoch, seq_length, drop_last_partial_sequence, add_extra_token);
  std::vector<int64_t> shape = {num_samples + 1, 2};
  const int64_t largest = std::max<int64_t>(static_cast<int64_t>(document_index.size()), max_sequence_length);
  if (largest <= std::numeric_limits<int32_t>::max()) {
    return NpyArray::from_vector(
        fill_sample_index<int32_t>(sequence_lengths, document_index, seq_length, num_samples, extra), std::move(shape));
  }
  return NpyArray::from_vector(
      fill_sample_index<int64_t>(sequence_lengths, document_index, seq_length, num_samples, extra), std::move(shape));
}

}  // namespace nemotron::data
