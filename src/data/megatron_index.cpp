#include "data/megatron_index.h"

#include <charconv>
#include <cmath>
#include <numeric>
#include <set>

#include "core/error.h"

namespace nemotron::data {

const char* split_name(Split split) {
  switch (split) {
    case Split::Train: return "train";
    case Split::Valid: return "valid";
    case Split::Test: return "test";
  }
  return "?";
}

namespace {

// NumPy's pairwise_sum for float64 (numpy/_core/src/umath/loops_utils.h.src): below 8 values a plain
// loop, up to 128 eight accumulators, above that two halves recursively.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

}  // namespace

double numpy_sum(const std::vector<double>& values) { return pairwise_sum(values.data(), values.size()); }

std::vector<double> normalize_weights(const std::vector<double>& weights) {
  const double total = numpy_sum(weights);
  std::vector<double> out;
  out.reserve(weights.size());
  for (double w : weights) out.push_back(w / total);
  return out;
}

std::array<double, 3> parse_and_normalize_split(std::string_view split) {
  std::vector<double> values;
  for (size_t i = 0; i < split.size();) {
    auto is_num_char = [](char c) { return c == '.' || (c >= '0' && c <= '9'); };
    if (!is_num_char(split[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < split.size() && is_num_char(split[j])) ++j;
    const std::string_view token = split.substr(i, j - i);
    double v = 0;
    auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
    NT_CHECK(ec == std::errc() && ptr == token.data() + token.size(),
             "dataset.split '{}': '{}' is not a number (write proportions like \"9999,8,2\")", split, token);
    values.push_back(v);
    i = j;
  }
  NT_CHECK(values.size() <= 3, "dataset.split '{}' has {} numbers; give at most three (train, valid, test), e.g. "
           "\"9999,8,2\"", split, values.size());
  values.resize(3, 0.0);
  NT_CHECK(values[0] + values[1] + values[2] > 0,
           "dataset.split '{}' gives every split a weight of 0; use e.g. \"9999,8,2\"", split);
  const std::vector<double> normalized = normalize_weights(values);
  return {normalized[0], normalized[1], normalized[2]};
}

SplitMatrix split_matrix_from_vector(const std::array<double, 3>& vector) {
  SplitMatrix matrix;
  double begin = 0;
  for (int i = 0; i < 3; ++i) {
    const double end = begin + vector[i];
    if (end > begin) matrix[i] = std::make_pair(begin, end);
    begin = end;
  }
  return matrix;
}

std::pair<int64_t, int64_t> split_document_range(const std::pair<double, double>& bounds, int64_t num_elements) {
  const double n = static_cast<double>(num_elements);
  // Python's round() on a float rounds half to even, as nearbyint does in the default rounding mode.
  return {static_cast<int64_t>(std::nearbyint(bounds.first * n)),
          static_cast<int64_t>(std::nearbyint(bounds.second * n))};
}

int64_t gpt_num_epochs(int64_t tokens_per_epoch, std::optional<int64_t> num_samples, int64_t seq_length,
                       bool add_extra_token) {
  if (!num_samples) return 1;
  NT_CHECK(tokens_per_epoch > 0, "a dataset split without tokens cannot provide {} samples", *num_samples);
  const int64_t requested = *num_samples * seq_length + (add_extra_token ? 1 : 0);
  return std::max<int64_t>(1, (requested + tokens_per_epoch - 1) / tokens_per_epoch);
}

std::optional<int64_t> gpt_separate_final_epoch(int64_t num_epochs, int64_t tokens_per_epoch,
                                                int64_t num_samples, int64_t seq_length, bool add_extra_token) {
  if (num_epochs == 1) return std::nullopt;
  const int64_t extra = add_extra_token ? 1 : 0;
  const int64_t sans_final = ((num_epochs - 1) * tokens_per_epoch - extra) / seq_length;
  const int64_t from_final = num_samples - sans_final;
  const int64_t per_epoch = (tokens_per_epoch - extra) / seq_length;
  NT_CHECK(from_final >= 0 && from_final <= per_epoch + 1,
           "internal error: {} samples from the final epoch (per epoch {})", from_final, per_epoch);
  const auto threshold = static_cast<int64_t>(0.80 * static_cast<double>(per_epoch));
  if (from_final < threshold) return sans_final;
  return std::nullopt;
}

std::vector<int32_t> build_document_index(const std::vector<int32_t>& documents, int64_t num_epochs,
                                          NumpyRandomState& rng, bool separate_final_epoch) {
  if (!separate_final_epoch || num_epochs == 1) {
    std::vector<int32_t> index;
    index.reserve(documents.size() * static_cast<size_t>(num_epochs));
    for (int64_t e = 0; e < num_epochs; ++e) index.insert(index.end(), documents.begin(), documents.end());
    rng.shuffle(std::span<int32_t>(index));
    return index;
  }
  std::vector<int32_t> first = build_document_index(documents, num_epochs - 1, rng, false);
  const std::vector<int32_t> last = build_document_index(documents, 1, rng, false);
  first.insert(first.end(), last.begin(), last.end());
  return first;
}

void fail_sample_index(int64_t sample, int64_t num_samples) {
  fail("internal error building the sample index: documents ran out at sample {} of {}", sample, num_samples);
}

int64_t gpt_sample_count(int64_t num_epochs, int64_t tokens_per_epoch, int64_t seq_length,
                         bool drop_last_partial_sequence, bool add_extra_token) {
  const int64_t usable = num_epochs * tokens_per_epoch - (add_extra_token ? 1 : 0);
  if (drop_last_partial_sequence) return usable / seq_length;
  // helpers.cpp divides in single precision here.
  return static_cast<int64_t>(std::ceil(static_cast<float>(usable) / static_cast<float>(seq_length)));
}

namespace {

template <typename T>
NpyArray shuffled_ranges(int64_t num_samples, int64_t total_size, NumpyRandomState& rng) {
  std::vector<T> index(static_cast<size_t>(total_size));
  std::iota(index.begin(), index.end(), T{0});
  rng.shuffle(std::span<T>(index.data(), static_cast<size_t>(num_samples)));
  if (total_size > num_samples) {
    rng.shuffle(std::span<T>(index.data() + num_samples, static_cast<size_t>(total_size - num_samples)));
  }
  return NpyArray::from_vector(std::move(index), {total_size});
}

}  // namespace

NpyArray build_shuffle_index(int64_t num_samples, int64_t total_size, NumpyRandomState& rng) {
  NT_CHECK(num_samples >= 0 && num_samples <= total_size, "internal error: shuffle ranges {} / {}", num_samples,
           total_size);
  if (total_size >= int64_t{0xffffffff} - 1) return shuffled_ranges<int64_t>(num_samples, total_size, rng);
  return shuffled_ranges<uint32_t>(num_samples, total_size, rng);
}

void build_blending_indices(const std::vector<double>& weights, int64_t size, std::vector<int16_t>& dataset_index,
                            std::vector<int64_t>& dataset_sample_index) {
  const size_t n = weights.size();
  NT_CHECK(n > 0 && n < 32767, "a blend needs between 1 and 32766 datasets, got {}", n);
  dataset_index.assign(static_cast<size_t>(size), 0);
  dataset_sample_index.assign(static_cast<size_t>(size), 0);
  std::vector<int64_t> current(n, 0);
  for (int64_t sample = 0; sample < size; ++sample) {
    const double at = std::max(static_cast<double>(sample), 1.0);
    size_t best = 0;
    double best_error = weights[0] * at - static_cast<double>(current[0]);
    for (size_t d = 1; d < n; ++d) {
      const double error = weights[d] * at - static_cast<double>(current[d]);
      if (error > best_error) {
        best_error = error;
        best = d;
      }
    }
    dataset_index[static_cast<size_t>(sample)] = static_cast<int16_t>(best);
    dataset_sample_index[static_cast<size_t>(sample)] = current[best];
    ++current[best];
  }
}

void build_exhaustive_blending_indices(const std::vector<int64_t>& sizes, std::vector<int16_t>& dataset_index,
                                       std::vector<int64_t>& dataset_sample_index) {
  const size_t n = sizes.size();
  NT_CHECK(n > 0 && n < 32767, "a blend needs between 1 and 32766 datasets, got {}", n);
  int64_t total = 0;
  for (int64_t s : sizes) {
    NT_CHECK(s > 0, "every dataset of an exhaustive blend needs samples; one has {}", s);
    total += s;
  }
  std::vector<double> weights(n);
  for (size_t d = 0; d < n; ++d) weights[d] = static_cast<double>(sizes[d]) / static_cast<double>(total);
  dataset_index.assign(static_cast<size_t>(total), 0);
  dataset_sample_index.assign(static_cast<size_t>(total), 0);
  std::vector<int64_t> counts(n, 0);
  std::set<size_t> unspent;
  for (size_t d = 0; d < n; ++d) unspent.insert(d);
  for (int64_t sample = 0; !unspent.empty(); ++sample) {
    const double at = std::max(static_cast<double>(sample), 1.0);
    size_t best = 0;
    double best_error = std::numeric_limits<double>::lowest();
    bool found = false;
    for (size_t d : unspent) {
      const double error = weights[d] * at - static_cast<double>(counts[d]);
      if (!found || error > best_error) {
        best = d;
        best_error = error;
        found = true;
      }
    }
    dataset_index[static_cast<size_t>(sample)] = static_cast<int16_t>(best);
    dataset_sample_index[static_cast<size_t>(sample)] = counts[best];
    if (++counts[best] == sizes[best]) unspent.erase(best);
  }
}

std::vector<std::array<int64_t, 3>> size_per_split_per_dataset(const std::vector<double>& normalized_weights,
                                                               const std::array<int64_t, 3>& target_sizes,
                                                               double surplus) {
  std::vector<std::array<int64_t, 3>> out;
  for (double w : normalized_weights) {
    std::array<int64_t, 3> sizes{};
    for (int s = 0; s < 3; ++s) {
      const double target = std::ceil(static_cast<double>(target_sizes[s]) * w);
      sizes[s] = static_cast<int64_t>(std::ceil(target * (1.0 + surplus)));
    }
    out.push_back(sizes);
  }
  return out;
}

}  // namespace nemotron::data
