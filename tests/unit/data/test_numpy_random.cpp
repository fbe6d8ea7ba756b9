// NumPy random generators, md5, Python float repr / json strings and split parsing, against values
// NumPy and Python produced (tools/make_data_reference.py -> tests/data/data/rng.json).
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "data/megatron_index.h"
#include "data/numpy_random.h"
#include "data/py_json.h"
#include "data_test_util.h"

using namespace nemotron::data;
using data_test::hex_double;
using data_test::ints;

namespace {

const nemotron::json::Value& rng_ref() {
  static const nemotron::json::Value v = data_test::load_json("rng.json");
  return v;
}

}  // namespace

TEST(NumpyRandomState, RawDrawsMatchNumpy) {
  for (auto [key, seed] : {std::pair{"mt19937_seed1234_first1000", 1234u}, std::pair{"mt19937_seed0_first10", 0u},
                           std::pair{"mt19937_seed4294967295_first10", 4294967295u}}) {
    SCOPED_TRACE(key);
    NumpyRandomState rs(seed);
    const auto expected = ints(rng_ref().at(key));
    for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(rs.next_uint32(), expected[i]) << "draw " << i;
  }
}

TEST(NumpyRandomState, PermutationMatchesNumpy) {
  for (const auto& p : rng_ref().at("permutations").items()) {
    const auto seed = static_cast<uint32_t>(p.at("seed").as_int());
    const int64_t n = p.at("n").as_int();
    SCOPED_TRACE("seed " + std::to_string(seed) + " n " + std::to_string(n));
    NumpyRandomState rs(seed);
    const std::vector<int64_t> perm = rs.permutation(n);
    const auto head = ints(p.at("head"));
    EXPECT_EQ(std::vector<int64_t>(perm.begin(), perm.begin() + static_cast<ptrdiff_t>(head.size())), head);
    EXPECT_EQ(data_test::md5_int64(perm), p.at("md5_int64").as_string());
  }
}

TEST(NumpyRandomState, RandomIntervalMatchesMaskedRandint) {
  // RandomState.randint(0, max + 1, dtype=int64) rejects masked draws exactly as random_interval:
  // 32-bit draws up to 2^32 - 1, 64-bit (high word first) above.
  for (const auto& c : rng_ref().at("random_interval").items()) {
    const auto max = static_cast<uint64_t>(c.at("max").as_int());
    SCOPED_TRACE("max " + std::to_string(max));
    NumpyRandomState rs(static_cast<uint32_t>(c.at("seed").as_int()));
    for (int64_t expected : ints(c.at("draws"))) EXPECT_EQ(rs.random_interval(max), static_cast<uint64_t>(expected));
  }
}

TEST(NumpyRandomState, ShuffleOfInt32ArrayMatchesNumpy) {
  std::vector<int32_t> a(100);
  for (int i = 0; i < 100; ++i) a[i] = 3 * i;
  NumpyRandomState rs(42);
  rs.shuffle(std::span<int32_t>(a));
  const auto expected = ints(rng_ref().at("shuffle_int32_seed42"));
  EXPECT_EQ(std::vector<int64_t>(a.begin(), a.end()), expected);
}

TEST(NumpyDefaultRng, SeedSequenceMatchesNumpy) {
  for (const auto& c : rng_ref().at("seed_sequence").items()) {
    const uint64_t entropy = std::stoull(c.at("entropy").number_text());
    SCOPED_TRACE(entropy);
    const std::vector<uint32_t> words = seed_sequence_state(entropy, 8);
    EXPECT_EQ(std::vector<int64_t>(words.begin(), words.end()), ints(c.at("words")));
  }
}

TEST(NumpyDefaultRng, Pcg64DrawsMatchNumpy) {
  for (const auto& c : rng_ref().at("pcg64_raw").items()) {
    NumpyDefaultRng rng(static_cast<uint64_t>(c.at("seed").as_int()));
    for (const auto& d : c.at("draws").items()) EXPECT_EQ(rng.next_uint64(), std::stoull(d.as_string()));
  }
}

TEST(NumpyDefaultRng, IntegersMatchNumpy) {
  for (const auto& c : rng_ref().at("integers32").items()) {
    const int64_t low = c.at("low").as_int(), high = c.at("high").as_int(), n = c.at("n").as_int();
    SCOPED_TRACE("integers(" + std::to_string(low) + ", " + std::to_string(high) + ")");
    NumpyDefaultRng rng(static_cast<uint64_t>(c.at("seed").as_int()));
    const std::vector<int64_t> v = rng.integers32(low, high, n);
    const auto head = ints(c.at("head"));
    EXPECT_EQ(std::vector<int64_t>(v.begin(), v.begin() + static_cast<ptrdiff_t>(head.size())), head);
    EXPECT_EQ(data_test::md5_int64(v), c.at("md5_int64").as_string());
  }
  NumpyDefaultRng rng(0);
  EXPECT_THROW(rng.integers32(5, 5, 1), nemotron::Error);
}

TEST(Md5, MatchesHashlib) {
  for (const auto& c : rng_ref().at("md5").items()) {
    EXPECT_EQ(md5_hex(c.at("text").as_string()), c.at("md5").as_string()) << c.at("text").as_string().size();
  }
}

TEST(PyJson, FloatReprMatchesPython) {
  for (const auto& c : rng_ref().at("float_repr").items()) {
    EXPECT_EQ(python_float_repr(hex_double(c.at("value"))), c.at("repr").as_string());
  }
}

TEST(PyJson, StringsAndLayoutMatchJsonDumps) {
  for (const auto& c : rng_ref().at("json_strings").items()) {
    EXPECT_EQ(PyJson::string(c.at("text").as_string()).dump(), c.at("dumped").as_string());
  }
  const PyJson nested = PyJson::dict({{"a", PyJson::list({PyJson::integer(0), PyJson::real(0.5), PyJson()})},
                                      {"b", PyJson::list({})},
                                      {"c", PyJson::dict({})}});
  // json.dumps({"a": [0, 0.5, None], "b": [], "c": {}}, indent=4)
  EXPECT_EQ(nested.dump(4), "{\n    \"a\": [\n        0,\n        0.5,\n        null\n    ],\n    \"b\": [],\n"
                            "    \"c\": {}\n}");
}

TEST(Split, ParseNormaliseAndRangesMatchMegatron) {
  for (const auto& c : rng_ref().at("splits").items()) {
    const std::string split = c.at("split").as_string();
    SCOPED_TRACE(split);
    const auto vector = parse_and_normalize_split(split);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(vector[i], hex_double(c.at("vector").items()[i]));
    const SplitMatrix matrix = split_matrix_from_vector(vector);
    for (int i = 0; i < 3; ++i) {
      const auto& row = c.at("matrix").items()[i];
      ASSERT_EQ(matrix[i].has_value(), !row.is_null()) << "split " << i;
      if (!matrix[i]) continue;
      EXPECT_EQ(matrix[i]->first, hex_double(row.items()[0]));
      EXPECT_EQ(matrix[i]->second, hex_double(row.items()[1]));
      for (auto [key, n] : {std::pair{"ranges_1000", int64_t{1000}}, std::pair{"ranges_7", int64_t{7}}}) {
        const auto range = split_document_range(*matrix[i], n);
        EXPECT_EQ(range.first, c.at(key).items()[i].items()[0].as_int()) << key;
        EXPECT_EQ(range.second, c.at(key).items()[i].items()[1].as_int()) << key;
      }
    }
  }
  EXPECT_THROW(parse_and_normalize_split("1,2,3,4"), nemotron::Error);
  EXPECT_THROW(parse_and_normalize_split("0,0,0"), nemotron::Error);
  EXPECT_THROW(parse_and_normalize_split("1..2,3"), nemotron::Error);
  EXPECT_THROW(parse_and_normalize_split("train"), nemotron::Error);
}
