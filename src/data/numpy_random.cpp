#include "data/numpy_random.h"

#include <numeric>

#include "core/error.h"

namespace nemotron::data {

// ---- MT19937 (RandomState) ------------------------------------------------------------------------

NumpyRandomState::NumpyRandomState(uint32_t seed) {
  // init_genrand: Knuth's linear recurrence.
  state_[0] = seed;
  for (uint32_t i = 1; i < state_.size(); ++i) {
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + i;
  }
  position_ = static_cast<int>(state_.size());
}

void NumpyRandomState::regenerate() {
  constexpr int n = 624, m = 397;
  for (int i = 0; i < n; ++i) {
    const uint32_t y = (state_[i] & 0x80000000u) | (state_[(i + 1) % n] & 0x7fffffffu);
    state_[i] = state_[(i + m) % n] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
  }
  position_ = 0;
}

uint32_t NumpyRandomState::next_uint32() {
  if (position_ == static_cast<int>(state_.size())) regenerate();
  uint32_t y = state_[position_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t NumpyRandomState::next_uint64() {
  const uint64_t high = next_uint32();
  return (high << 32) | next_uint32();
}

uint64_t NumpyRandomState::random_interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift : {1, 2, 4, 8, 16, 32}) mask |= mask >> shift;
  uint64_t value;
  if (max <= 0xffffffffu) {
    while ((value = (next_uint32() & mask)) > max) {
    }
  } else {
    while ((value = (next_uint64() & mask)) > max) {
    }
  }
  return value;
}

std::vector<int64_t> NumpyRandomState::permutation(int64_t n) {
  NT_CHECK(n >= 0, "permutation of a negative size {}", n);
  std::vector<int64_t> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), int64_t{0});
  shuffle(std::span<int64_t>(values));
  return values;
}

// ---- SeedSequence + PCG64 (default_rng) ------------------------------------------------------------

std::vector<uint32_t> seed_sequence_state(uint64_t entropy, int n_words) {
  constexpr uint32_t kInitA = 0x43b0d7e5u, kMultA = 0x931e8875u;
  constexpr uint32_t kInitB = 0x8b51f9ddu, kMultB = 0x58f38dedu;
  constexpr uint32_t kMixMultL = 0xca01f9ddu, kMixMultR = 0x4973f715u;
  constexpr int kPoolSize = 4;

  // The integer as little-endian 32-bit words (0 is one zero word).
  std::vector<uint32_t> words{static_cast<uint32_t>(entropy)};
  if (entropy >> 32) words.push_back(static_cast<uint32_t>(entropy >> 32));

  uint32_t hash_const = kInitA;
  auto hashmix = [&](uint32_t value) {
    value ^= hash_const;
    hash_const *= kMultA;
    value *= hash_const;
    return value ^ (value >> 16);
  };
  auto mix = [](uint32_t x, uint32_t y) {
    uint32_t r = kMixMultL * x - kMixMultR * y;
    return r ^ (r >> 16);
  };

  std::array<uint32_t, kPoolSize> pool{};
  for (int i = 0; i < kPoolSize; ++i) pool[i] = hashmix(i < static_cast<int>(words.size()) ? words[i] : 0u);
  for (int src = 0; src < kPoolSize; ++src) {
    for (int dst = 0; dst < kPoolSize; ++dst) {
      if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  for (size_t src = kPoolSize; src < words.size(); ++src) {
    for (int dst = 0; dst < kPoolSize; ++dst) pool[dst] = mix(pool[dst], hashmix(words[src]));
  }

  std::vector<uint32_t> out(static_cast<size_t>(n_words));
  uint32_t hash_b = kInitB;
  for (int i = 0; i < n_words; ++i) {
    uint32_t value = pool[i % kPoolSize] ^ hash_b;
    hash_b *= kMultB;
    value *= hash_b;
    out[i] = value ^ (value >> 16);
  }
  return out;
}

namespace {

using u128 = unsigned __int128;

constexpr u128 kPcgMultiplier = (u128{0x2360ed051fc65da4ull} << 64) | 0x4385df649fccf645ull;

u128 make_u128(uint64_t high, uint64_t low) { return (u128{high} << 64) | low; }

}  // namespace

NumpyDefaultRng::NumpyDefaultRng(uint64_t seed) {
  // PCG64(SeedSequence(seed)): generate_state(4, uint64) = 8 words read as little-endian pairs;
  // words 0-1 are the initial state (first uint64 is the high half), 2-3 the stream.
  const std::vector<uint32_t> w = seed_sequence_state(seed, 8);
  uint64_t v[4];
  for (int i = 0; i < 4; ++i) v[i] = (uint64_t{w[2 * i + 1]} << 32) | w[2 * i];
  const u128 initstate = make_u128(v[0], v[1]);
  const u128 initseq = make_u128(v[2], v[3]);
  // pcg_setseq_128_srandom_r
  increment_ = (initseq << 1) | 1;
  state_ = 0;
  state_ = state_ * kPcgMultiplier + increment_;
  state_ += initstate;
  state_ = state_ * kPcgMultiplier + increment_;
}

uint64_t NumpyDefaultRng::next_uint64() {
  state_ = state_ * kPcgMultiplier + increment_;
  const uint64_t high = static_cast<uint64_t>(state_ >> 64);
  const uint64_t x = high ^ static_cast<uint64_t>(state_);
  const unsigned rot = static_cast<unsigned>(high >> 58);
  return (x >> rot) | (x << ((64 - rot) & 63));
}

uint32_t NumpyDefaultRng::next_uint32() {
  if (has_half_) {
    has_half_ = false;
    return half_;
  }
  const uint64_t draw = next_uint64();
  has_half_ = true;
  half_ = static_cast<uint32_t>(draw >> 32);
  return static_cast<uint32_t>(draw);
}

std::vector<int64_t> NumpyDefaultRng::integers32(int64_t low, int64_t high, int64_t n) {
  NT_CHECK(low < high, "integers: low ({}) must be below high ({})", low, high);
  NT_CHECK(high - low - 1 <= 0xffffffffll, "integers: range [{}, {}) exceeds 32 bits", low, high);
  NT_CHECK(n >= 0, "integers: negative count {}", n);
  const uint32_t rng = static_cast<uint32_t>(high - low - 1);  // inclusive range
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (auto& value : out) {
    uint32_t draw;
    if (rng == 0) {
      draw = 0;
    } else if (rng == 0xffffffffu) {
      draw = next_uint32();
    } else {
      // Lemire's bounded integer with rejection (buffered_bounded_lemire_uint32).
      const uint32_t range_excl = rng + 1;
      uint64_t m = uint64_t{next_uint32()} * range_excl;
      uint32_t leftover = static_cast<uint32_t>(m);
      if (leftover < range_excl) {
        const uint32_t threshold = (0xffffffffu - rng) % range_excl;
        while (leftover < threshold) {
          m = uint64_t{next_uint32()} * range_excl;
          leftover = static_cast<uint32_t>(m);
        }
      }
      draw = static_cast<uint32_t>(m >> 32);
    }
    value = low + draw;
  }
  return out;
}

}  // namespace nemotron::data
