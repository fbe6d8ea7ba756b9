// Megatron .bin/.idx writer and reader against files written by a Python reproduction of
// Megatron-LM's IndexedDatasetBuilder (tools/make_indexed_dataset_reference.py), plus corrupt files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/indexed_dataset.h"

namespace fs = std::filesystem;
using namespace nemotron::data;

namespace {

std::string reference(const std::string& name) { return std::string(NEMOTRON_TEST_DATA) + "/indexed_dataset/" + name; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// The documents of HANDMADE_DOCS in the Python generator: (tokens, sentence lengths).
struct Doc {
  std::vector<int32_t> tokens, lengths;
};
std::vector<Doc> handmade_docs() {
  std::vector<int32_t> range;
  for (int32_t t = 100; t < 160; ++t) range.push_back(t);
  return {{{5, 6, 7, 8}, {4}}, {{}, {}}, {{1, 65499, 2, 3, 300, 9}, {2, 4}}, {{42}, {1}}, {range, {10, 0, 50}}};
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("nt_idx_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

void write_handmade(const std::string& prefix, TokenDType dtype) {
  IndexedDatasetBuilder b(prefix, dtype);
  for (const Doc& d : handmade_docs()) b.add_document(d.tokens, d.lengths);
  if (dtype == TokenDType::Int32) {
    const std::vector<int32_t> big{70000, 1 << 30}, three{3};
    b.add_item(big);
    b.add_item(three);
    b.end_document();
  }
  b.finalize();
}

TEST(IndexedDataset, WriterIsByteIdenticalToMegatron) {
  TempDir dir;
  for (auto [name, dtype] : {std::pair{"handmade_uint16", TokenDType::UInt16}, std::pair{"handmade_int32", TokenDType::Int32}}) {
    SCOPED_TRACE(name);
    write_handmade(dir / name, dtype);
    EXPECT_EQ(slurp(dir / (std::string(name) + ".idx")), slurp(reference(std::string(name) + ".idx")));
    EXPECT_EQ(slurp(dir / (std::string(name) + ".bin")), slurp(reference(std::string(name) + ".bin")));
    // No temporary files are left behind.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().string().ends_with(".tmp");
    EXPECT_EQ(files, 0);
  }
}

TEST(IndexedDataset, ReaderReadsMegatronFiles) {
  const IndexedDataset ds(reference("handmade_int32"));
  EXPECT_EQ(ds.dtype(), TokenDType::Int32);
  // Sequences: doc0 [4], doc1 none, doc2 [2,4], doc3 [1], doc4 [10,0,50], then items [2], [1].
  const std::vector<int32_t> lengths{4, 2, 4, 1, 10, 0, 50, 2, 1};
  ASSERT_EQ(ds.num_sequences(), static_cast<int64_t>(lengths.size()));
  for (size_t i = 0; i < lengths.size(); ++i) EXPECT_EQ(ds.sequence_length(static_cast<int64_t>(i)), lengths[i]);
  EXPECT_EQ(ds.document_indices(), (std::vector<int64_t>{0, 1, 1, 3, 4, 7, 9}));
  EXPECT_EQ(ds.num_documents(), 6);
  EXPECT_EQ(ds.get(1), (std::vector<int32_t>{1, 65499}));
  EXPECT_EQ(ds.get(2), (std::vector<int32_t>{2, 3, 300, 9}));
  EXPECT_EQ(ds.get(7), (std::vector<int32_t>{70000, 1 << 30}));
  EXPECT_EQ(ds.get(5), std::vector<int32_t>{});
  EXPECT_EQ(ds.get(6, 10, 3), (std::vector<int32_t>{120, 121, 122}));
  EXPECT_EQ(ds.sequence_pointer(2), 6 * 4);
  EXPECT_THROW(ds.get(9), nemotron::Error);
  EXPECT_THROW(ds.get(0, 2, 3), nemotron::Error);

  const IndexedDataset ds16(reference("handmade_uint16"));
  EXPECT_EQ(ds16.dtype(), TokenDType::UInt16);
  EXPECT_EQ(ds16.get(1), (std::vector<int32_t>{1, 65499}));  // above int16: read as unsigned
  EXPECT_EQ(ds16.sequence_pointer(2), 6 * 2);
}

TEST(IndexedDataset, OptimalDtypeFollowsMegatron) {
  EXPECT_EQ(optimal_token_dtype(65499), TokenDType::UInt16);
  EXPECT_EQ(optimal_token_dtype(65500), TokenDType::Int32);
  EXPECT_EQ(optimal_token_dtype(131072), TokenDType::Int32);
}

TEST(IndexedDataset, WriterRejectsTokensOutsideTheDtype) {
  TempDir dir;
  {
    IndexedDatasetBuilder b(dir / "x", TokenDType::UInt16);
    const std::vector<int32_t> bad{1, 65536};
    EXPECT_THROW(b.add_item(bad), nemotron::Error);
    const std::vector<int32_t> neg{-1};
    EXPECT_THROW(b.add_item(neg), nemotron::Error);
    const std::vector<int32_t> tokens{1, 2, 3}, lengths{2};
    EXPECT_THROW(b.add_document(tokens, lengths), nemotron::Error);  // lengths do not add up
  }
  // Abandoned without finalize(): nothing left, not even under the final names.
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// Copies a reference dataset, lets `corrupt` edit the bytes, and expects opening to fail with a
// message containing `what`.
void expect_corrupt(const std::string& what, const std::function<void(std::string& idx, std::string& bin)>& corrupt) {
  TempDir dir;
  std::string idx = slurp(reference("handmade_int32.idx")), bin = slurp(reference("handmade_int32.bin"));
  corrupt(idx, bin);
  spit(dir / "d.idx", idx);
  spit(dir / "d.bin", bin);
  try {
    IndexedDataset ds(dir / "d");
    ADD_FAILURE() << "opened a corrupt dataset (" << what << ")";
  } catch (const nemotron::Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(IndexedDataset, ReaderRejectsCorruptFiles) {
  expect_corrupt("too short", [](std::string& idx, std::string&) { idx.resize(20); });
  expect_corrupt("bad magic", [](std::string& idx, std::string&) { idx[0] = 'X'; });
  expect_corrupt("version", [](std::string& idx, std::string&) { idx[9] = 2; });
  expect_corrupt("dtype code", [](std::string& idx, std::string&) { idx[17] = 9; });
  expect_corrupt("truncated", [](std::string& idx, std::string&) { idx.resize(idx.size() - 8); });
  expect_corrupt("truncated", [](std::string& idx, std::string&) { idx[18] = static_cast<char>(0xFF); });
  expect_corrupt("outside", [](std::string&, std::string& bin) { bin.resize(bin.size() - 4); });
  expect_corrupt("negative length", [](std::string& idx, std::string&) { idx[34 + 3] = static_cast<char>(0x80); });
  expect_corrupt("start with 0", [](std::string& idx, std::string&) {
    const size_t docs = 34 + 12 * 9;
    idx[docs] = 1;
  });
  expect_corrupt("must not decrease", [](std::string& idx, std::string&) {
    const size_t docs = 34 + 12 * 9;
    idx[docs + 8 * 3] = 0;  // 0,1,1,0,...
  });
  TempDir dir;
  EXPECT_THROW(IndexedDataset(dir / "missing"), nemotron::Error);
}

}  // namespace
