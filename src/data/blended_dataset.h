// Megatron-Core's BlendedDataset (blended_dataset.py): samples drawn from several GPTDatasets in
// proportion to weights. dataset_index[i] names the dataset of sample i and dataset_sample_index[i]
// the sample within it, built by helpers.cpp build_blending_indices (each sample goes to the dataset
// whose share lags its weight most) or, without a size, build_exhaustive_blending_indices (every
// sample of every dataset exactly once). Cached, like Megatron, only under path_to_cache, as
// <md5>-BlendedDataset-<split>-{description.txt,dataset_index.npy,dataset_sample_index.npy}.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/gpt_dataset.h"

namespace nemotron::data {

class BlendedDataset : public SampleDataset {
 public:
  // With a size, `weights` are normalised and `size` samples drawn; without one, weights are the exact
  // sample counts per dataset. Errors when a dataset is asked for more samples than it has (raise
  // dataset.mid_level_dataset_surplus).
  BlendedDataset(std::vector<std::shared_ptr<const GPTDataset>> datasets, std::vector<double> weights,
                 std::optional<int64_t> size, std::optional<std::string> path_to_cache,
                 double mid_level_dataset_surplus);

  int64_t size() const override { return dataset_index_.element_count(); }
  GPTSample sample(int64_t i) const override;

  const std::vector<double>& weights() const { return weights_; }
  const NpyArray& dataset_index() const { return dataset_index_; }                // int16
  const NpyArray& dataset_sample_index() const { return dataset_sample_index_; }  // int64
  const std::vector<std::shared_ptr<const GPTDataset>>& datasets() const { return datasets_; }
  const std::string& unique_description() const { return description_; }
  const std::string& unique_description_hash() const { return description_hash_; }
  bool loaded_from_cache() const { return loaded_from_cache_; }

 private:
  bool load_cached(const std::string& base);
  void save(const std::string& base) const;

  std::vector<std::shared_ptr<const GPTDataset>> datasets_;
  std::vector<double> weights_;
  std::optional<int64_t> size_;
  Split split_;
  std::string description_, description_hash_;
  NpyArray dataset_index_, dataset_sample_index_;
  bool loaded_from_cache_ = false;
};

}  // namespace nemotron::data
