#include "data/gpt_dataset.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "data/md5.h"
#include "io/file_util.h"

namespace nemotron::data {

// ---- IndexedLowLevelDataset --------------------------------------------------------------------------

IndexedLowLevelDataset::IndexedLowLevelDataset(const std::string& prefix) : prefix_(prefix), data_(prefix) {
  lengths_.resize(static_cast<size_t>(data_.num_sequences()));
  for (int64_t i = 0; i < data_.num_sequences(); ++i) {
    lengths_[static_cast<size_t>(i)] = data_.sequence_length(i);
    max_length_ = std::max(max_length_, lengths_[static_cast<size_t>(i)]);
  }
}

void IndexedLowLevelDataset::read(int64_t i, int64_t offset, int64_t length, int64_t* out) const {
  std::vector<int32_t> buffer(static_cast<size_t>(std::max<int64_t>(length, 0)));
  data_.read(i, offset, length, buffer.data());
  std::copy(buffer.begin(), buffer.end(), out);
}

void check_all_token_ids(const LowLevelDataset& data, std::pair<int64_t, int64_t> sequences, int64_t vocab_size) {
  if (vocab_size <= 0) return;
  std::vector<int64_t> tokens;
  for (int64_t s = sequences.first; s < sequences.second; ++s) {
    tokens.resize(static_cast<size_t>(data.sequence_length(s)));
    data.read(s, 0, static_cast<int64_t>(tokens.size()), tokens.data());
    for (size_t k = 0; k < tokens.size(); ++k) {
      NT_CHECK(tokens[k] >= 0 && tokens[k] < vocab_size,
               "{}.bin: token id {} (sequence {}, position {}) is outside the vocabulary [0, {}); the data was "
               "tokenized with another tokenizer, or the vocabulary is too small",
               data.path_prefix(), tokens[k], s, k, vocab_size);
    }
  }
}

// ---- description ---------------------------------------------------------------------------------------

PyJson tokenizer_identifiers(const TokenizerInfo& tokenizer) {
  return PyJson::dict({{"identity", PyJson::string(tokenizer.identity)},
                       {"vocab_size", PyJson::integer(tokenizer.vocab_size)},
                       {"eod_id", PyJson::integer(tokenizer.eod_id)},
                       {"pad_id", PyJson::integer(tokenizer.pad_id)}});
}

namespace {

// Megatron's split_matrix as json.dumps writes it: the first bound of the first split is the integer 0
// of convert_split_vector_to_split_matrix's expansion; every other bound is a float.
PyJson split_matrix_json(const SplitMatrix& matrix) {
  PyJson::Items rows;
  for (int i = 0; i < 3; ++i) {
    if (!matrix[i]) {
      rows.emplace_back();
      continue;
    }
    const PyJson begin = i == 0 ? PyJson::integer(0) : PyJson::real(matrix[i]->first);
    rows.push_back(PyJson::list({begin, PyJson::real(matrix[i]->second)}));
  }
  return PyJson::list(std::move(rows));
}

}  // namespace

// ---- GPTDataset ----------------------------------------------------------------------------------------

GPTDataset::GPTDataset(std::shared_ptr<const LowLevelDataset> data, std::pair<int64_t, int64_t> documents,
                       std::optional<int64_t> num_samples, Split split, GPTDatasetOptions options)
    : data_(std::move(data)),
      documents_(documents),
      num_samples_(num_samples),
      split_(split),
      options_(std::move(options)) {
  NT_CHECK(options_.seq_length > 1, "dataset.seq_length must be at least 2, got {}", options_.seq_length);
  NT_CHECK(options_.random_seed >= 0 && options_.random_seed <= 0xffffffffll,
           "dataset.random_seed must be in [0, 2^32) (numpy RandomState), got {}", options_.random_seed);
  NT_CHECK(documents_.first >= 0 && documents_.first <= documents_.second &&
               documents_.second <= data_->num_sequences(),
           "internal error: documents [{}, {}) of {} sequences", documents_.first, documents_.second,
           data_->num_sequences());
  NT_CHECK(!num_samples_ || *num_samples_ >= 0, "negative sample count {}", *num_samples_);
  for (int64_t d = documents_.first; d < documents_.second; ++d) tokens_per_epoch_ += data_->sequence_length(d);
  const std::string where = options_.mock ? std::string("the mock dataset") : data_->path_prefix();
  NT_CHECK(tokens_per_epoch_ > 1,
           "the {} split of {} has {} documents with {} tokens, too few to cut samples from (documents [{}, {}) "
           "of {}); give the split a larger share in dataset.split or use more data",
           split_name(split_), where, documents_.second - documents_.first, tokens_per_epoch_, documents_.first,
           documents_.second, data_->num_sequences());
  num_epochs_ = gpt_num_epochs(tokens_per_epoch_, num_samples_, options_.seq_length,
                               options_.add_extra_token_to_sequence);

  identifiers_ = PyJson::dict({
      {"class", PyJson::string("GPTDataset")},
      {"dataset_path", options_.mock ? PyJson() : PyJson::string(data_->path_prefix())},
      {"num_samples", num_samples_ ? PyJson::integer(*num_samples_) : PyJson()},
      {"index_split", PyJson::string(split_name(split_))},
      {"random_seed", PyJson::integer(options_.random_seed)},
      {"sequence_length", PyJson::integer(options_.seq_length)},
      {"split", options_.split ? PyJson::string(*options_.split) : PyJson()},
      {"split_matrix", options_.split ? split_matrix_json(options_.split_matrix) : PyJson()},
      {"tokenizer", tokenizer_identifiers(options_.tokenizer)},
  });
  description_ = identifiers_.dump(4);
  description_hash_ = md5_hex(description_);

  std::optional<std::string> cache_dir = options_.path_to_cache;
  if (!cache_dir && !options_.mock) cache_dir = io::join_path(data_->path_prefix(), "cache/GPTDataset_indices");
  if (options_.mock) cache_dir.reset();  // Megatron caches no mock indices
  const std::string base =
      cache_dir ? io::join_path(*cache_dir, description_hash_ + "-GPTDataset-" + split_name(split_) + "-") : "";
  if (cache_dir && load_cached_indices(base)) {
    loaded_from_cache_ = true;
    return;
  }
  build_indices();
  if (cache_dir) save_indices(base);
}

void GPTDataset::build_indices() {
  const bool extra = options_.add_extra_token_to_sequence;
  std::optional<int64_t> sans_final_epoch;
  if (num_samples_) {
    sans_final_epoch = gpt_separate_final_epoch(num_epochs_, tokens_per_epoch_, *num_samples_,
                                                options_.seq_length, extra);
  }
  NumpyRandomState rng(static_cast<uint32_t>(options_.random_seed));
  std::vector<int32_t> documents;
  documents.reserve(static_cast<size_t>(documents_.second - documents_.first));
  for (int64_t d = documents_.first; d < documents_.second; ++d) documents.push_back(static_cast<int32_t>(d));
  std::vector<int32_t> document_index =
      build_document_index(documents, num_epochs_, rng, sans_final_epoch.has_value());

  const bool drop_last = split_ != Split::Valid || options_.drop_last_partial_validation_sequence;
  const LowLevelDataset& data = *data_;
  sample_index_ = build_sample_index([&data](int32_t d) { return static_cast<int64_t>(data.sequence_length(d)); },
                                     data.max_sequence_length(), document_index, options_.seq_length, num_epochs_,
                                     tokens_per_epoch_, drop_last, extra);
  const int64_t n = sample_index_.shape()[0] - 1;
  shuffle_index_ = build_shuffle_index(sans_final_epoch.value_or(n), n, rng);
  const auto length = static_cast<int64_t>(document_index.size());
  document_index_ = NpyArray::from_vector(std::move(document_index), {length});
}

bool GPTDataset::load_cached_indices(const std::string& base) {
  const std::string description_path = base + "description.txt";
  const std::string names[3] = {base + "document_index.npy", base + "sample_index.npy", base + "shuffle_index.npy"};
  if (!io::path_exists(description_path)) return false;
  for (const auto& p : names) {
    if (!io::path_exists(p)) return false;
  }
  auto reject = [&](const std::string& why) {
    log_line(LogLevel::Warning, fmt::format("ignoring the cached {} indices {}*: {}; rebuilding them",
                                            split_name(split_), base, why));
    return false;
  };
  try {
    if (io::read_file(description_path) != description_) return reject("the description differs");
    NpyArray document_index = NpyArray::load(names[0]);
    NpyArray sample_index = NpyArray::load(names[1]);
    NpyArray shuffle_index = NpyArray::load(names[2]);

    const int64_t num_docs = documents_.second - documents_.first;
    if (document_index.type() != NpyType::Int32 || document_index.shape() != std::vector<int64_t>{num_epochs_ * num_docs}) {
      return reject("document_index has the wrong type or shape");
    }
    for (int64_t k = 0; k < document_index.element_count(); ++k) {
      if (document_index[k] < documents_.first || document_index[k] >= documents_.second) {
        return reject("document_index holds a document outside the split");
      }
    }
    const bool drop_last = split_ != Split::Valid || options_.drop_last_partial_validation_sequence;
    const int64_t n = gpt_sample_count(num_epochs_, tokens_per_epoch_, options_.seq_length, drop_last,
                                       options_.add_extra_token_to_sequence);
    if ((sample_index.type() != NpyType::Int32 && sample_index.type() != NpyType::Int64) ||
        sample_index.shape() != std::vector<int64_t>{n + 1, 2}) {
      return reject("sample_index has the wrong type or shape");
    }
    const int64_t positions = document_index.element_count();
    for (int64_t r = 0; r <= n; ++r) {
      const int64_t position = sample_index.at(r, 0), offset = sample_index.at(r, 1);
      if (position < 0 || position >= positions || offset < 0 ||
          offset > data_->sequence_length(document_index[position])) {
        return reject("sample_index points outside the documents");
      }
    }
    if ((shuffle_index.type() != NpyType::UInt32 && shuffle_index.type() != NpyType::Int64) ||
        shuffle_index.shape() != std::vector<int64_t>{n}) {
      return reject("shuffle_index has the wrong type or shape");
    }
    for (int64_t k = 0; k < n; ++k) {
      if (shuffle_index[k] < 0 || shuffle_index[k] >= n) return reject("shuffle_index holds a sample out of range");
    }
    document_index_ = std::move(document_index);
    sample_index_ = std::move(sample_index);
    shuffle_index_ = std::move(shuffle_index);
    log_line(LogLevel::Info, fmt::format("loaded the {} indices of {} from {}*", split_name(split_),
                                         data_->path_prefix(), base));
    return true;
  } catch (const Error& e) {
    return reject(e.what());
  }
}

void GPTDataset::save_indices(const std::string& base) const {
  try {
    std::filesystem::create_directories(std::filesystem::path(base).parent_path());
    document_index_.save(base + "document_index.npy");
    sample_index_.save(base + "sample_index.npy");
    shuffle_index_.save(base + "shuffle_index.npy");
    io::write_file_atomic(base + "description.txt", description_);
  } catch (const std::exception& e) {
    log_line(LogLevel::Warning,
             fmt::format("could not cache the {} indices under {}*: {}; they are rebuilt on every run (set "
                         "dataset.path_to_cache to a writable directory)",
                         split_name(split_), base, e.what()));
  }
}

std::vector<int64_t> GPTDataset::sample_text(int64_t i) const {
  NT_CHECK(i >= 0 && i < size(), "sample {} is out of range: the {} dataset of {} has {} samples", i,
           split_name(split_), options_.mock ? "mock data" : data_->path_prefix(), size());
  const int64_t extra = options_.add_extra_token_to_sequence ? 1 : 0;
  const int64_t wanted = options_.seq_length + extra;
  const int64_t j = shuffle_index_[i];
  const int64_t first = sample_index_.at(j, 0), first_offset = sample_index_.at(j, 1);
  const int64_t last = sample_index_.at(j + 1, 0), last_offset = sample_index_.at(j + 1, 1);

  std::vector<int64_t> text(static_cast<size_t>(wanted), options_.tokenizer.pad_id);
  int64_t filled = 0;
  auto append = [&](int64_t document, int64_t offset, int64_t length) {
    NT_CHECK(filled + length <= wanted, "internal error: sample {} spans more than {} tokens", i, wanted);
    data_->read(document, offset, length, text.data() + filled);
    filled += length;
  };
  if (first == last) {
    append(document_index_[first], first_offset, last_offset - first_offset + extra);
  } else {
    for (int64_t k = first; k <= last; ++k) {
      const int64_t document = document_index_[k];
      const int64_t offset = k > first ? 0 : first_offset;
      const int64_t length = k < last ? data_->sequence_length(document) - offset : last_offset + extra;
      append(document, offset, length);
    }
  }
  check_token_ids(text, filled);
  return text;
}

void GPTDataset::check_token_ids(const std::vector<int64_t>& text, int64_t filled) const {
  const int64_t vocab = options_.tokenizer.vocab_size;
  if (vocab <= 0) return;
  for (int64_t k = 0; k < filled; ++k) {
    const int64_t t = text[static_cast<size_t>(k)];
    NT_CHECK(t >= 0 && t < vocab,
             "{}: token id {} is outside the vocabulary [0, {}) (in a {} sample); the data was tokenized with "
             "another tokenizer, or the vocabulary is too small",
             options_.mock ? "mock data" : data_->path_prefix() + ".bin", t, vocab, split_name(split_));
  }
}

GPTSample GPTDataset::sample(int64_t i) const {
  const std::vector<int64_t> text = sample_text(i);
  const auto n = static_cast<size_t>(options_.seq_length);
  const int64_t pad = options_.tokenizer.pad_id, eod = options_.tokenizer.eod_id;
  GPTSample s;
  if (options_.add_extra_token_to_sequence) {
    s.tokens.assign(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(n));
    s.labels.assign(text.begin() + 1, text.end());
  } else {
    s.tokens = text;
    s.labels.assign(text.begin() + 1, text.end());
    s.labels.push_back(pad);
  }
  s.loss_mask.assign(n, 1.0f);
  s.position_ids.resize(n);
  int64_t position = 0;
  for (size_t k = 0; k < n; ++k) {
    const bool is_eod = s.tokens[k] == eod;
    if (options_.eod_mask_loss && is_eod) s.loss_mask[k] = 0.0f;
    s.position_ids[k] = position;
    position = options_.reset_position_ids && is_eod ? 0 : position + 1;
  }
  for (size_t k = 0; k < n; ++k) {
    if (s.labels[k] == pad) s.loss_mask[k] = 0.0f;
    if (s.tokens[k] == pad) s.tokens[k] = 0;
    if (s.labels[k] == pad) s.labels[k] = 0;
  }
  return s;
}

}  // namespace nemotron::data
