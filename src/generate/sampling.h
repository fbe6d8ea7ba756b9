// Choosing the next token from logits: greedy, or sampling with temperature, top-k, top-p and
// min-p, after an optional repetition penalty — the semantics of transformers' logits processors,
// applied in transformers' order (repetition penalty, temperature, top-k, top-p, min-p).
//
// Randomness comes from Rng, a documented generator so that a seed means the same thing on every
// machine and in every build: xoshiro256** (Blackman & Vigna, https://prng.di.unimi.it/) whose
// 256-bit state is filled by splitmix64 from (seed, stream). A uniform double in [0, 1) is the top
// 53 bits of the next output times 2^-53. A token is drawn by inverse CDF: u·(sum of probabilities),
// then the first token id, in ascending id order, whose running sum exceeds it.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace nemotron::generate {

class Rng {
 public:
  // Sequence i of a batch uses stream i, so that its draws do not depend on the other sequences.
  explicit Rng(uint64_t seed = 0, uint64_t stream = 0);
  uint64_t next_u64();
  double uniform();  // [0, 1), 53 random bits

 private:
  uint64_t s_[4];
};

struct SamplingParams {
  bool do_sample = false;          // false: greedy, the argmax (after the repetition penalty)
  double temperature = 1.0;        // > 0; logits are divided by it
  int64_t top_k = 0;               // keep the k most likely tokens (ties with the k-th kept); 0: off
  double top_p = 1.0;              // keep the smallest most-likely set with probability >= top_p; 1: off
  double min_p = 0.0;              // drop tokens below min_p × the top probability; 0: off
  double repetition_penalty = 1.0; // > 0; 1: off
  uint64_t seed = 0;

  // Errors name the bad value and its range.
  void validate() const;
};

// transformers' RepetitionPenaltyLogitsProcessor: each id of `context` (the prompt and every token
// generated so far; duplicates count once) gets logit / penalty when positive, logit × penalty when
// negative.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> context, double penalty);

// The distribution sampling draws from: softmax(logits / temperature) restricted by top-k, top-p
// and min-p (each computed on what the previous one left), renormalised. Removed tokens have
// probability 0. Sorting ties are broken by token id (lower id counts as more likely).
std::vector<float> sampling_distribution(std::span<const float> logits, const SamplingParams& params);

// The index of the largest value; the lowest index among equal maxima (as torch.argmax).
int32_t argmax(std::span<const float> values);

// A draw from non-negative weights (not necessarily normalised), by inverse CDF as described above.
int32_t sample(std::span<const float> weights, Rng& rng);

// Speculative sampling (Leviathan et al. 2023, Chen et al. 2023): `draft` was drawn from q; keep it
// with probability min(1, p(draft) / q(draft)) (one uniform draw), else draw the replacement from
// max(0, p - q) renormalised (p itself where that is all zero). The result is distributed as p.
// Returns the token; *accepted says whether it is the draft.
int32_t accept_or_resample(std::span<const float> p, std::span<const float> q, int32_t draft, Rng& rng, bool* accepted);

}  // namespace nemotron::generate
