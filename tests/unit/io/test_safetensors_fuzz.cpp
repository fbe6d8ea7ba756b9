// Feeds thousands of mutated and truncated safetensors files to the reader. Each must either load,
// with every tensor view lying inside the file and holding exactly the bytes the header points at
// (all of them are read), or fail with nemotron::Error. Anything else (another exception type, a
// crash) fails the test. Deterministic seed; runs in well under a second.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/safetensors.h"
#include "io_test_util.h"

namespace nemotron::io {
namespace {

using testing::ScratchDir;

class Fuzzer {
 public:
  Fuzzer() : rng_(20240607) {
    // A base file with every kind of entry the reader handles: several dtypes, odd packed FP4, an
    // empty tensor, a scalar, metadata.
    std::string path = dir_.file("base.safetensors");
    Tensor f4 = Tensor::empty({3}, DType::F4_E2M1);
    std::memset(f4.raw_data(), 0x5A, f4.nbytes());
    save_safetensors(path,
                     {{"model.w", Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})},
                      {"b16", Tensor::full({5}, 0.5, DType::BF16)},
                      {"ids", Tensor::from_vector(std::vector<int64_t>{1, -2}, {2})},
                      {"fp4", f4},
                      {"none", Tensor::empty({0}, DType::U8)},
                      {"e4m3", Tensor::full({2, 2}, 1.0, DType::F8_E4M3)},
                      {"mask", Tensor::full({3}, 1.0, DType::Bool)},
                      {"s", Tensor::full({}, 2.0, DType::F16)}},
                     {{"format", "pt"}, {"k", "v"}});
    base_ = testing::read_bytes(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(base_[i]);
    header_ = base_.substr(8, n);
    data_ = base_.substr(8 + n);
  }

  const std::string& base() const { return base_; }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // Opens `bytes` as a file; returns true when it loaded.
  bool check(const std::string& bytes, const std::string& what) {
    std::string path = dir_.file("fuzz.safetensors");
    testing::write_bytes(path, bytes);
    try {
      SafetensorsFile f = SafetensorsFile::open(path);
      for (const SafetensorsEntry& e : f.entries()) {
        EXPECT_LE(f.data_start() + e.end, bytes.size()) << what;
        Tensor t = f.tensor(e.name);
        EXPECT_EQ(t.nbytes(), e.nbytes()) << what;
        EXPECT_EQ(t.shape(), e.shape) << what;
        if (e.nbytes() > 0) {  // reads every byte of the view
          EXPECT_EQ(std::memcmp(t.raw_data(), bytes.data() + f.data_start() + e.begin, e.nbytes()), 0) << what;
        }
      }
      return true;
    } catch (const nemotron::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "error without the file name: " << e.what();
      return false;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": unexpected exception type: " << e.what();
      return false;
    }
  }

  // A file with this header text (length field set to match) and the base data region.
  std::string with_header(const std::string& header) const { return testing::le_u64(header.size()) + header + data_; }

  // One random structural edit of the header text.
  std::string mutate_header(std::string h) {
    static const std::vector<std::string> kNumbers = {
        "0", "1", "-1", "-0", "2", "3", "4", "7", "8", "12", "255", "4294967296", "9223372036854775807",
        "9223372036854775808", "18446744073709551615", "18446744073709551616", "99999999999999999999999", "1e3",
        "2.5", "Infinity", "NaN", "-Infinity", "{\"__float__\":\"Infinity\"}", "\"3\"", "null", "[]", "true"};
    static const std::vector<std::string> kDtypes = {"F32", "BF16", "F16",     "F64",     "I64", "I32",     "I16",
                                                     "I8",  "U8",   "BOOL",    "F8_E4M3", "F8_E5M2", "F4", "F4_E2M1",
                                                     "U16", "C64",  "",        "f32",     "F8_E8M0", "float32"};
    static const std::vector<std::string> kShapes = {"[]",         "[0]",         "[-1]",
                                                     "[4294967296,4294967296]", "[1,1,1,1,1,1,1,1]", "[3,0,5]",
                                                     "[18446744073709551615]",  "[2,3]",  "[1]", "[6]", "\"x\""};
    switch (below(8)) {
      case 0: {  // replace a number
        auto spans = find_numbers(h);
        if (spans.empty()) break;
        auto [pos, len] = spans[below(spans.size())];
        std::string repl = below(2) ? kNumbers[below(kNumbers.size())] : std::to_string(below(data_.size() + 16));
        h.replace(pos, len, repl);
        break;
      }
      case 1: {  // replace a dtype
        auto spans = find_after(h, "\"dtype\":\"", '"');
        if (spans.empty()) break;
        auto [pos, len] = spans[below(spans.size())];
        h.replace(pos, len, kDtypes[below(kDtypes.size())]);
        break;
      }
      case 2: {  // swap two data_offsets arrays
        auto spans = find_after(h, "\"data_offsets\":", ']');
        if (spans.size() < 2) break;
        size_t a = below(spans.size()), b = below(spans.size());
        if (a == b) break;
        if (spans[a].first > spans[b].first) std::swap(a, b);
        std::string sa = h.substr(spans[a].first, spans[a].second + 1), sb = h.substr(spans[b].first, spans[b].second + 1);
        h.replace(spans[b].first, spans[b].second + 1, sa);
        h.replace(spans[a].first, spans[a].second + 1, sb);
        break;
      }
      case 3: {  // duplicate an entry (same name, or a renamed copy that overlaps the original)
        auto entries = find_entries(h);
        if (entries.empty()) break;
        auto [pos, len] = entries[below(entries.size())];
        std::string copy = h.substr(pos, len);
        if (below(2)) copy.insert(1, below(2) ? "x" : "__metadata__\"");
        h.insert(h.rfind('}'), "," + copy);
        break;
      }
      case 4: {  // replace a shape
        auto spans = find_after(h, "\"shape\":", ']');
        if (spans.empty()) break;
        auto [pos, len] = spans[below(spans.size())];
        h.replace(pos, len + 1, kShapes[below(kShapes.size())]);
        break;
      }
      case 5: {  // delete a few characters
        size_t pos = below(h.size());
        h.erase(pos, 1 + below(5));
        break;
      }
      case 6: {  // insert structural characters or random bytes
        static const std::string kChars = "{}[]\",:0123456789-.eE\\ aF_u";
        size_t pos = below(h.size() + 1);
        std::string ins;
        for (size_t i = 0, n = 1 + below(4); i < n; ++i)
          ins += below(4) ? kChars[below(kChars.size())] : static_cast<char>(below(256));
        h.insert(pos, ins);
        break;
      }
      case 7: {  // metadata of the wrong kind
        size_t pos = h.find("\"__metadata__\":");
        if (pos == std::string::npos) break;
        static const std::vector<std::string> kMeta = {"null", "[]", "{\"a\":1}", "{\"a\":{\"b\":\"c\"}}", "\"s\"",
                                                       "{}"};
        size_t end = h.find('}', pos);
        h.replace(pos + 15, end - (pos + 15) + 1, kMeta[below(kMeta.size())]);
        break;
      }
    }
    return h;
  }

  const std::string& header() const { return header_; }
  const std::string& data() const { return data_; }

 private:
  ScratchDir dir_;
  std::mt19937_64 rng_;
  std::string base_, header_, data_;

  // (position, length) of each maximal run of digits, with a leading '-'.
  static std::vector<std::pair<size_t, size_t>> find_numbers(const std::string& h) {
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t i = 0; i < h.size();) {
      if (std::isdigit(static_cast<unsigned char>(h[i]))) {
        size_t start = i > 0 && h[i - 1] == '-' ? i - 1 : i;
        while (i < h.size() && std::isdigit(static_cast<unsigned char>(h[i]))) ++i;
        out.emplace_back(start, i - start);
      } else {
        ++i;
      }
    }
    return out;
  }
  // Spans starting right after each `prefix` and ending before the next `stop` character.
  static std::vector<std::pair<size_t, size_t>> find_after(const std::string& h, const std::string& prefix, char stop) {
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t p = h.find(prefix); p != std::string::npos; p = h.find(prefix, p + 1)) {
      size_t start = p + prefix.size(), end = h.find(stop, start);
      if (end != std::string::npos) out.emplace_back(start, end - start);
    }
    return out;
  }
  // Spans of `"name":{...}` tensor entries.
  static std::vector<std::pair<size_t, size_t>> find_entries(const std::string& h) {
    std::vector<std::pair<size_t, size_t>> out;
    for (size_t p = h.find(":{\"dtype\""); p != std::string::npos; p = h.find(":{\"dtype\"", p + 1)) {
      size_t key_end = p - 1, key_start = h.rfind('"', key_end - 1), close = h.find('}', p);
      if (key_start != std::string::npos && close != std::string::npos)
        out.emplace_back(key_start, close + 1 - key_start);
    }
    return out;
  }
};

TEST(SafetensorsFuzz, MutatedFilesLoadOrFailCleanly) {
  Fuzzer fz;
  const std::string& base = fz.base();
  ASSERT_TRUE(fz.check(base, "base file"));
  int cases = 0, loaded = 0;
  auto run = [&](const std::string& bytes, const std::string& what) {
    ++cases;
    loaded += fz.check(bytes, what);
  };

  // Truncation at every length.
  for (size_t n = 0; n < base.size(); ++n) run(base.substr(0, n), fmt::format("truncated to {} bytes", n));

  // Random byte changes, mostly in the length field and header.
  size_t header_end = 8 + fz.header().size();
  for (int i = 0; i < 1500; ++i) {
    std::string b = base;
    for (uint64_t k = 0, n = 1 + fz.below(3); k < n; ++k) {
      size_t pos = fz.below(5) ? fz.below(header_end) : fz.below(b.size());
      b[pos] = fz.below(2) ? static_cast<char>(fz.below(256)) : static_cast<char>(b[pos] ^ (1 << fz.below(8)));
    }
    run(b, fmt::format("byte flips #{}", i));
  }

  // Corrupted length field.
  for (int i = 0; i < 300; ++i) {
    uint64_t len = fz.header().size();
    switch (fz.below(4)) {
      case 0: len = fz.below(2 * base.size()); break;
      case 1: len = len + fz.below(33) - 16; break;
      case 2: len = fz.below(2) ? kSafetensorsMaxHeaderBytes + fz.below(3) - 1 : (uint64_t{1} << 63) + fz.below(3); break;
      case 3: len = base.size() - 8 + fz.below(3) - 1; break;
    }
    run(testing::le_u64(len) + base.substr(8), fmt::format("length field {}", len));
  }

  // Structural JSON edits, one to three at a time, with a consistent length field; sometimes with the
  // data region cut short or extended.
  for (int i = 0; i < 3000; ++i) {
    std::string h = fz.header();
    for (uint64_t k = 0, n = 1 + fz.below(3); k < n; ++k) h = fz.mutate_header(h);
    std::string bytes = fz.with_header(h);
    uint64_t tail = fz.below(6);
    if (tail == 0) bytes.resize(bytes.size() - fz.below(fz.data().size() + 1));
    if (tail == 1) bytes.append(fz.below(16), '\x7f');
    run(bytes, fmt::format("header edit #{}: {}", i, h));
  }

  EXPECT_GE(cases, 5000);
  // Both outcomes must occur, or the mutations are not exercising the validation.
  EXPECT_GT(loaded, 100);
  EXPECT_GT(cases - loaded, 1000);
  std::printf("fuzz: %d files, %d loaded, %d rejected\n", cases, loaded, cases - loaded);
}

}  // namespace
}  // namespace nemotron::io
