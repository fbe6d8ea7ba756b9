// Megatron-Core's GPTDataset (megatron/core/datasets/gpt_dataset.py; spec/workflow.md §5.2): fixed-
// length training samples cut from the concatenated documents of one split of a low-level dataset
// (a Megatron .bin/.idx pair, or the mock generator), in Megatron's order for a given seed.
//
// Construction, as Megatron does it:
//  1. the split's documents (sequences) [begin, end) and their token count per epoch;
//  2. num_epochs: the fewest epochs covering num_samples * seq_length + 1 tokens;
//  3. document_index: the documents repeated num_epochs times, shuffled with
//     numpy.random.RandomState(random_seed) (the last epoch on its own when it supplies fewer than
//     80% of an epoch's samples);
//  4. sample_index: where each sample of seq_length + 1 tokens starts (samples overlap by one token,
//     documents are concatenated with no separator beyond what preprocessing appended);
//  5. shuffle_index: the sample order, a permutation drawn from the same RandomState.
// The three arrays are cached as .npy files under path_to_cache (default <prefix>/cache/
// GPTDataset_indices/) named <md5 of the description>-GPTDataset-<split>-{description.txt,
// document_index.npy, sample_index.npy, shuffle_index.npy}, exactly as Megatron names and writes them;
// a cached set is used only after its description matches and every array passes shape and range
// checks (otherwise it is rebuilt). The md5 matches Megatron's only where the tokenizer description
// does (TokenizerInfo::identity stands in for Megatron's tokenizer object), so Megatron's own cache
// files are not picked up by name, but the arrays are the same.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "data/megatron_index.h"
#include "data/npy.h"
#include "data/py_json.h"

namespace nemotron::data {

// What the dataset needs to know about the tokenizer.
struct TokenizerInfo {
  int64_t vocab_size = 0;  // every token id must be in [0, vocab_size) (0: not checked)
  int64_t eod_id = -1;     // end-of-document id: eod_mask_loss, reset_position_ids, mock documents
  int64_t pad_id = -1;     // -1: no pad token (Megatron's _PAD_TOKEN_ID)
  std::string identity;    // enters the cache description, e.g. the tokenizer path
};

// GPTDatasetConfig fields that shape the samples.
struct GPTDatasetOptions {
  int64_t seq_length = 0;
  int64_t random_seed = 1234;  // numpy RandomState seed: [0, 2^32)
  std::optional<std::string> split;  // as written ("9999,8,2"); null with per-split blends
  SplitMatrix split_matrix;          // empty with per-split blends
  std::optional<std::string> path_to_cache;
  bool reset_position_ids = false;
  bool reset_attention_mask = false;  // no effect: attention builds the causal mask (the trainer refuses the
                                      // combination with the dataset's mask, under which Megatron applies it)
  bool eod_mask_loss = false;
  bool add_extra_token_to_sequence = true;
  bool drop_last_partial_validation_sequence = true;
  bool mock = false;  // mock data: nothing is cached
  TokenizerInfo tokenizer;
};

// One training sample, as GPTDataset.__getitem__ returns it (without the attention mask).
struct GPTSample {
  std::vector<int64_t> tokens;        // [seq_length] inputs
  std::vector<int64_t> labels;        // [seq_length] next tokens
  std::vector<float> loss_mask;       // [seq_length] 0 at EOD inputs (eod_mask_loss) and pad labels
  std::vector<int64_t> position_ids;  // [seq_length] 0.. (restarting after EOD with reset_position_ids)
  int dataset_id = 0;                 // which dataset of a blend it came from
};

// A dataset of samples addressed 0..size()-1 (GPTDataset or BlendedDataset). sample() is const and
// safe to call from several threads.
class SampleDataset {
 public:
  virtual ~SampleDataset() = default;
  virtual int64_t size() const = 0;
  virtual GPTSample sample(int64_t i) const = 0;
};

// Megatron's "low-level dataset": sequences of tokens.
class LowLevelDataset {
 public:
  virtual ~LowLevelDataset() = default;
  virtual int64_t num_sequences() const = 0;
  virtual int32_t sequence_length(int64_t i) const = 0;
  virtual int32_t max_sequence_length() const = 0;
  // Tokens [offset, offset + length) of sequence i.
  virtual void read(int64_t i, int64_t offset, int64_t length, int64_t* out) const = 0;
  // Where the data lives (the prefix), for messages and the default cache directory; "" for mock.
  virtual const std::string& path_prefix() const = 0;
};

// An IndexedDataset (PREFIX.bin/.idx) as a low-level dataset; sequence lengths are read once.
class IndexedLowLevelDataset : public LowLevelDataset {
 public:
  explicit IndexedLowLevelDataset(const std::string& prefix);
  int64_t num_sequences() const override { return static_cast<int64_t>(lengths_.size()); }
  int32_t sequence_length(int64_t i) const override { return lengths_[static_cast<size_t>(i)]; }
  int32_t max_sequence_length() const override { return max_length_; }
  void read(int64_t i, int64_t offset, int64_t length, int64_t* out) const override;
  const std::string& path_prefix() const override { return prefix_; }

 private:
  std::string prefix_;
  IndexedDataset data_;
  std::vector<int32_t> lengths_;
  int32_t max_length_ = 0;
};

class GPTDataset : public SampleDataset {
 public:
  // Samples from sequences [documents.first, documents.second) of `data`. num_samples: the minimum
  // number of samples to provide (nullopt: one epoch). Builds or loads the indices.
  GPTDataset(std::shared_ptr<const LowLevelDataset> data, std::pair<int64_t, int64_t> documents,
             std::optional<int64_t> num_samples, Split split, GPTDatasetOptions options);

  int64_t size() const override { return sample_index_.shape()[0] - 1; }
  GPTSample sample(int64_t i) const override;
  // The seq_length + 1 (or seq_length) raw tokens of sample i, before the shift into tokens/labels;
  // padded with pad_id past the end of the data.
  std::vector<int64_t> sample_text(int64_t i) const;

  Split split() const { return split_; }
  std::optional<int64_t> num_samples() const { return num_samples_; }
  int64_t num_epochs() const { return num_epochs_; }
  const NpyArray& document_index() const { return document_index_; }
  const NpyArray& sample_index() const { return sample_index_; }
  const NpyArray& shuffle_index() const { return shuffle_index_; }
  // Megatron's unique_identifiers (the blended description nests them), description and its md5.
  const PyJson& unique_identifiers() const { return identifiers_; }
  const std::string& unique_description() const { return description_; }
  const std::string& unique_description_hash() const { return description_hash_; }
  // Whether the indices came from the cache (false: built now).
  bool loaded_from_cache() const { return loaded_from_cache_; }
  const std::string& path_prefix() const { return data_->path_prefix(); }

 private:
  void build_indices();
  bool load_cached_indices(const std::string& base);
  void save_indices(const std::string& base) const;
  void check_token_ids(const std::vector<int64_t>& text, int64_t filled) const;  // the first `filled` are data

  std::shared_ptr<const LowLevelDataset> data_;
  std::pair<int64_t, int64_t> documents_;
  std::optional<int64_t> num_samples_;
  Split split_;
  GPTDatasetOptions options_;
  int64_t tokens_per_epoch_ = 0;
  int64_t num_epochs_ = 1;
  PyJson identifiers_;
  std::string description_, description_hash_;
  NpyArray document_index_, sample_index_, shuffle_index_;
  bool loaded_from_cache_ = false;
};

// Megatron's tokenizer entry of the description, from TokenizerInfo.
PyJson tokenizer_identifiers(const TokenizerInfo& tokenizer);

// Every token of sequences [first, second) of `data` checked against [0, vocab_size); the error
// names the prefix, the sequence and the position.
void check_all_token_ids(const LowLevelDataset& data, std::pair<int64_t, int64_t> sequences, int64_t vocab_size);

}  // namespace nemotron::data
