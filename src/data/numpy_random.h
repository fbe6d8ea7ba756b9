// Bit-exact reproductions of the two NumPy random generators Megatron's data pipeline uses, so that a
// seed gives Megatron's data order (DESIGN.md principle 7):
//
//  - NumpyRandomState: numpy.random.RandomState(seed) — legacy MT19937 seeded with init_genrand,
//    and its shuffle()/permutation(), which draw each swap partner with random_interval(): the
//    smallest all-ones mask >= max, then rejection of masked 32-bit draws (64-bit draws, high word
//    first, when max >= 2^32). Megatron's GPTDataset shuffles its document and sample indices with it.
//  - NumpyDefaultRng: numpy.random.default_rng(seed) — PCG64 (128-bit LCG, XSL-RR output) seeded
//    through SeedSequence, and Generator.integers() for 32-bit dtypes (Lemire's multiply-and-reject
//    on 32-bit draws; PCG64 hands out a 64-bit draw as two 32-bit halves, low half first).
//    MockGPTLowLevelDataset draws its document lengths with it.
//
// Both are checked against values NumPy produced (tests/unit/data/test_numpy_random.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace nemotron::data {

class NumpyRandomState {
 public:
  // RandomState(seed) for an integer seed in [0, 2^32).
  explicit NumpyRandomState(uint32_t seed);

  uint32_t next_uint32();
  uint64_t next_uint64();  // two 32-bit draws, the first is the high word
  // A uniform integer in [0, max] (NumPy's random_interval).
  uint64_t random_interval(uint64_t max);

  // RandomState.shuffle of a 1-D array: Fisher-Yates from the end, swapping i with
  // random_interval(i). The element type does not influence the draws.
  template <typename T>
  void shuffle(std::span<T> values) {
    for (size_t i = values.size(); i-- > 1;) {
      const uint64_t j = random_interval(i);
      std::swap(values[i], values[j]);
    }
  }
  // RandomState.permutation(n): arange(n) shuffled.
  std::vector<int64_t> permutation(int64_t n);

 private:
  void regenerate();
  std::array<uint32_t, 624> state_{};
  int position_ = 624;
};

class NumpyDefaultRng {
 public:
  // default_rng(seed) for a non-negative integer seed.
  explicit NumpyDefaultRng(uint64_t seed);

  uint64_t next_uint64();
  uint32_t next_uint32();  // the low half of a 64-bit draw, then its high half
  // Generator.integers(low, high, n, dtype=int32 or uint32): values in [low, high).
  std::vector<int64_t> integers32(int64_t low, int64_t high, int64_t n);

 private:
  unsigned __int128 state_ = 0, increment_ = 0;
  bool has_half_ = false;
  uint32_t half_ = 0;
};

// SeedSequence(entropy).generate_state(n_words, uint32) for integer entropy (pool size 4, no spawn
// key); exposed for tests.
std::vector<uint32_t> seed_sequence_state(uint64_t entropy, int n_words);

}  // namespace nemotron::data
