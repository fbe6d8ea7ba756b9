#include "data/blended_dataset.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "data/md5.h"
#include "io/file_util.h"

namespace nemotron::data {

BlendedDataset::BlendedDataset(std::vector<std::shared_ptr<const GPTDataset>> datasets, std::vector<double> weights,
                               std::optional<int64_t> size, std::optional<std::string> path_to_cache,
                               double mid_level_dataset_surplus)
    : datasets_(std::move(datasets)), weights_(std::move(weights)), size_(size) {
  NT_CHECK(!datasets_.empty() && datasets_.size() < 32767, "a blend needs between 1 and 32766 datasets, got {}",
           datasets_.size());
  NT_CHECK(datasets_.size() == weights_.size(), "a blend of {} datasets got {} weights", datasets_.size(),
           weights_.size());
  split_ = datasets_[0]->split();
  for (double w : weights_) NT_CHECK(w > 0, "blend weights must be positive, got {}", w);
  if (size_) weights_ = normalize_weights(weights_);  // again, as Megatron does, for identical bits

  PyJson::Items members;
  for (const auto& d : datasets_) members.push_back(d->unique_identifiers());
  PyJson::Items weight_items;
  for (double w : weights_) {
    weight_items.push_back(size_ ? PyJson::real(w) : PyJson::integer(static_cast<int64_t>(w)));
  }
  description_ = PyJson::dict({{"class", PyJson::string("BlendedDataset")},
                               {"datasets", PyJson::list(std::move(members))},
                               {"split", PyJson::string(split_name(split_))},
                               {"weights", PyJson::list(std::move(weight_items))},
                               {"size", size_ ? PyJson::integer(*size_) : PyJson()}})
                     .dump(4);
  description_hash_ = md5_hex(description_);

  const std::string base =
      path_to_cache ? io::join_path(*path_to_cache, description_hash_ + "-BlendedDataset-" + split_name(split_) + "-")
                    : "";
  if (path_to_cache && load_cached(base)) {
    loaded_from_cache_ = true;
    return;
  }

  std::vector<int16_t> dataset_index;
  std::vector<int64_t> dataset_sample_index;
  if (size_) {
    build_blending_indices(weights_, *size_, dataset_index, dataset_sample_index);
  } else {
    std::vector<int64_t> counts;
    for (double w : weights_) counts.push_back(static_cast<int64_t>(w));
    build_exhaustive_blending_indices(counts, dataset_index, dataset_sample_index);
  }
  std::vector<int64_t> used(datasets_.size(), 0);
  for (int16_t d : dataset_index) ++used[static_cast<size_t>(d)];
  for (size_t d = 0; d < datasets_.size(); ++d) {
    NT_CHECK(used[d] <= datasets_[d]->size(),
             "the {} blend asks {} samples of dataset {} ({}), which has only {}; raise "
             "dataset.mid_level_dataset_surplus (now {}), e.g. two- or ten-fold",
             split_name(split_), used[d], d, datasets_[d]->path_prefix(), datasets_[d]->size(),
             mid_level_dataset_surplus);
  }
  const auto n = static_cast<int64_t>(dataset_index.size());
  dataset_index_ = NpyArray::from_vector(std::move(dataset_index), {n});
  dataset_sample_index_ = NpyArray::from_vector(std::move(dataset_sample_index), {n});
  if (path_to_cache) save(base);
}

bool BlendedDataset::load_cached(const std::string& base) {
  const std::string description_path = base + "description.txt";
  const std::string index_path = base + "dataset_index.npy", sample_path = base + "dataset_sample_index.npy";
  if (!io::path_exists(description_path) || !io::path_exists(index_path) || !io::path_exists(sample_path)) {
    return false;
  }
  auto reject = [&](const std::string& why) {
    log_line(LogLevel::Warning,
             fmt::format("ignoring the cached blend indices {}*: {}; rebuilding them", base, why));
    return false;
  };
  try {
    if (io::read_file(description_path) != description_) return reject("the description differs");
    NpyArray index = NpyArray::load(index_path), sample = NpyArray::load(sample_path);
    int64_t n = 0;
    if (size_) {
      n = *size_;
    } else {
      for (double w : weights_) n += static_cast<int64_t>(w);
    }
    if (index.type() != NpyType::Int16 || index.shape() != std::vector<int64_t>{n} ||
        sample.type() != NpyType::Int64 || sample.shape() != std::vector<int64_t>{n}) {
      return reject("the arrays have the wrong type or shape");
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t d = index[k];
      if (d < 0 || d >= static_cast<int64_t>(datasets_.size()) || sample[k] < 0 ||
          sample[k] >= datasets_[static_cast<size_t>(d)]->size()) {
        return reject("an entry points outside the datasets");
      }
    }
    dataset_index_ = std::move(index);
    dataset_sample_index_ = std::move(sample);
    return true;
  } catch (const Error& e) {
    return reject(e.what());
  }
}

void BlendedDataset::save(const std::string& base) const {
  try {
    std::filesystem::create_directories(std::filesystem::path(base).parent_path());
    dataset_index_.save(base + "dataset_index.npy");
    dataset_sample_index_.save(base + "dataset_sample_index.npy");
    io::write_file_atomic(base + "description.txt", description_);
  } catch (const std::exception& e) {
    log_line(LogLevel::Warning, fmt::format("could not cache the blend indices under {}*: {}", base, e.what()));
  }
}

GPTSample BlendedDataset::sample(int64_t i) const {
  NT_CHECK(i >= 0 && i < size(), "sample {} is out of range: the {} blend has {} samples", i, split_name(split_),
           size());
  const auto d = static_cast<size_t>(dataset_index_[i]);
  GPTSample s = datasets_[d]->sample(dataset_sample_index_[i]);
  s.dataset_id = static_cast<int>(d);
  return s;
}

}  // namespace nemotron::data
