// From the run configuration to the train / valid / test datasets, as Megatron-Bridge and
// Megatron-Core's BlendedMegatronDatasetBuilder build them (spec/workflow.md §5.2).
//
// Typical use by the trainer:
//
//   data::TokenizerInfo tok{.vocab_size = V, .eod_id = eod};
//   auto ds = data::build_gpt_datasets(cfg, train_samples, valid_samples, test_samples, tok);
//   for (int64_t i = consumed_samples; ...; ++i) {
//     data::GPTSample s = ds.train->sample(i);  // tokens, labels, loss_mask, position_ids [seq_length]
//   }
//
// Sample order: ds.train->sample(i) is sample i of the global sample sequence, which is what
// Megatron's MegatronPretrainingSampler reads in order: iteration k's global batch is samples
// [k·GBS, (k+1)·GBS), and data-parallel rank r takes its micro-batches from its contiguous slice
// (rank r of each group of micro_batch_size × dp samples). No further shuffling happens; the
// shuffle is inside the dataset. A resumed run continues at i = consumed_samples. Validation reads
// ds.valid the same way (its own consumed counter), the final test ds.test from 0.
//
// Sample counts: Bridge's get_train_valid_test_num_samples — train = train_iters × GBS (or
// train_samples), valid = (train_iters / eval_interval + 1) × eval_iters × eval GBS, test =
// eval_iters × eval GBS. The datasets hold at least that many samples (usually more).
//
// Where the data comes from (first match wins):
//  - per_split_data_args_path (the --per-split-data-args-path flag) or dataset.blend_per_split: one
//    blend per split, each over the whole of its datasets; dataset.split is ignored;
//  - dataset.blend, else dataset.data_path: one blend split by dataset.split ("9999,8,2": document
//    ranges [round(a·N), round(b·N)) of every dataset);
//  - none of them: mock data (MockLowLevelDataset) split "1,1,1".
// A blend is [[prefix, ...], [weight, ...] or null], or a flat list / whitespace-separated string
// (get_blend_from_list: "w1 p1 w2 p2 ..." or "p1 p2 ..."). With weights, every dataset of a split is
// asked for ceil(ceil(n·w)·(1 + mid_level_dataset_surplus)) samples and a BlendedDataset draws
// Σ ceil(n·w) samples from them; one prefix without weights is used directly; several without
// weights are blended by their sizes.
//
// Checks (each a nemotron::Error before training starts): dataset_type must be "gpt"; model and
// dataset seq_length must agree; a missing prefix names both files expected; the .bin/.idx
// consistency checks of IndexedDataset; token ids >= vocab_size. Token ids are checked when each
// sample is read, and in addition the whole split is scanned at build time for every dataset of at
// most BuildOptions::scan_token_limit tokens (so small and test datasets fail before step one; a
// multi-terabyte corpus is not read twice).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/gpt_dataset.h"

namespace nemotron::data {

// A list of dataset prefixes with optional (unnormalised) weights.
struct BlendSpec {
  std::vector<std::string> prefixes;
  std::optional<std::vector<double>> weights;
};
using PerSplitBlend = std::array<std::optional<BlendSpec>, 3>;  // train, valid, test

// get_blend_from_list: an even-length list whose every other item (from the first) parses as a
// number is [w1, p1, w2, p2, ...]; otherwise every item is a prefix. Prefixes are stripped of
// surrounding whitespace. `what` names the setting in errors.
BlendSpec blend_from_list(const std::vector<std::string>& items, const std::string& what);

// The --per-split-data-args-path JSON: {"train": ..., "valid": ..., "test": ...}, each a list (as
// blend_from_list) or a whitespace-separated string, or null for no dataset. All three keys are
// required.
PerSplitBlend read_per_split_data_args(const std::string& path);

struct BuildOptions {
  std::optional<std::string> per_split_data_args_path;
  // Datasets with at most this many tokens are scanned for out-of-vocabulary ids at build time.
  int64_t scan_token_limit = int64_t{1} << 28;
};

// Everything the builder needs, resolved from the config.
struct GPTDataSpec {
  std::optional<BlendSpec> blend;
  std::optional<PerSplitBlend> blend_per_split;
  GPTDatasetOptions options;  // mock set when there is no data
  double mid_level_dataset_surplus = 0.005;
  int64_t scan_token_limit = int64_t{1} << 28;
};

GPTDataSpec gpt_data_spec(const config::Config& cfg, const TokenizerInfo& tokenizer, const BuildOptions& options = {});

// The datasets of the three splits. A split is null when it has no data source (a 0 share in
// dataset.split, no blend for it in a per-split blend) or when its share holds no documents and no
// samples are asked of it; asking samples of an empty split is an error.
struct GPTDatasets {
  std::shared_ptr<const SampleDataset> train, valid, test;
  bool mock = false;
  std::shared_ptr<const SampleDataset> split(Split s) const {
    return s == Split::Train ? train : s == Split::Valid ? valid : test;
  }
};

GPTDatasets build_gpt_datasets(const GPTDataSpec& spec, const std::array<int64_t, 3>& num_samples);
GPTDatasets build_gpt_datasets(const config::Config& cfg, int64_t train_samples, int64_t valid_samples,
                               int64_t test_samples, const TokenizerInfo& tokenizer,
                               const BuildOptions& options = {});

}  // namespace nemotron::data
