#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace nemotron::generate {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Softmax of the finite entries (−inf → 0), in double.
std::vector<double> softmax(const std::vector<double>& logits) {
  double mx = -std::numeric_limits<double>::infinity();
  for (double v : logits) mx = std::max(mx, v);
  std::vector<double> p(logits.size(), 0.0);
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i)
    if (std::isfinite(logits[i])) total += p[i] = std::exp(logits[i] - mx);
  for (double& v : p) v /= total;
  return p;
}

// Token ids ordered from most to least likely; equal logits: lower id first.
std::vector<int32_t> ranked(const std::vector<double>& logits) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  return order;
}

constexpr double kRemoved = -std::numeric_limits<double>::infinity();

}  // namespace

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
  for (uint64_t& s : s_) s = splitmix64(x);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

void SamplingParams::validate() const {
  NT_CHECK(std::isfinite(temperature) && temperature > 0, "temperature must be > 0, got {} (use greedy decoding instead of 0)",
           temperature);
  NT_CHECK(top_k >= 0, "top-k must be >= 0 (0 turns it off), got {}", top_k);
  NT_CHECK(top_p > 0 && top_p <= 1, "top-p must be in (0, 1], got {}", top_p);
  NT_CHECK(min_p >= 0 && min_p <= 1, "min-p must be in [0, 1], got {}", min_p);
  NT_CHECK(std::isfinite(repetition_penalty) && repetition_penalty > 0,
           "repetition penalty must be > 0 (1 turns it off), got {}", repetition_penalty);
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> context, double penalty) {
  if (penalty == 1.0) return;
  std::vector<int32_t> ids(context.begin(), context.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const float pen = static_cast<float>(penalty);
  for (int32_t id : ids) {
    NT_CHECK(id >= 0 && static_cast<size_t>(id) < logits.size(), "token id {} is outside the vocabulary [0, {})", id,
             logits.size());
    float& v = logits[id];
    v = v < 0 ? v * pen : v / pen;
  }
}

std::vector<float> sampling_distribution(std::span<const float> logits_in, const SamplingParams& params) {
  const size_t V = logits_in.size();
  NT_CHECK(V > 0, "cannot sample from an empty vocabulary");
  std::vector<double> logits(V);
  for (size_t i = 0; i < V; ++i) logits[i] = static_cast<double>(logits_in[i]) / params.temperature;

  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < V) {
    // Keep every token whose logit reaches the k-th largest (transformers keeps ties).
    std::vector<double> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + (params.top_k - 1), sorted.end(), std::greater<double>());
    const double kth = sorted[params.top_k - 1];
    for (double& v : logits)
      if (v < kth) v = kRemoved;
  }
  if (params.top_p < 1.0) {
    // transformers: going from the least likely up, drop tokens while their cumulative probability
    // stays <= 1 - top_p; the most likely token always stays.
    const std::vector<double> p = softmax(logits);
    const std::vector<int32_t> order = ranked(logits);
    double cumulative = 0.0;
    for (size_t r = V; r-- > 1;) {
      cumulative += p[order[r]];
      if (cumulative <= 1.0 - params.top_p) logits[order[r]] = kRemoved;
    }
  }
  if (params.min_p > 0.0) {
    const std::vector<double> p = softmax(logits);
    const double threshold = params.min_p * *std::max_element(p.begin(), p.end());
    for (size_t i = 0; i < V; ++i)
      if (p[i] < threshold) logits[i] = kRemoved;
  }
  const std::vector<double> p = softmax(logits);
  return std::vector<float>(p.begin(), p.end());
}

int32_t argmax(std::span<const float> values) {
  NT_CHECK(!values.empty(), "argmax of an empty vector");
  return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

int32_t sample(std::span<const float> weights, Rng& rng) {
  double total = 0.0;
  for (float w : weights) total += w;
  NT_CHECK(total > 0 && std::isfinite(total), "cannot sample: the probabilities sum to {}", total);
  const double u = rng.uniform() * total;
  double running = 0.0;
  int32_t last_positive = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0) continue;
    running += weights[i];
    last_positive = static_cast<int32_t>(i);
    if (running > u) return last_positive;
  }
  return last_positive;  // u landed in the rounding gap at the very end
}

int32_t accept_or_resample(std::span<const float> p, std::span<const float> q, int32_t draft, Rng& rng, bool* accepted) {
  NT_CHECK(p.size() == q.size() && draft >= 0 && static_cast<size_t>(draft) < p.size() && q[draft] > 0,
           "speculative sampling: the draft {} must have probability > 0 under the draft distribution", draft);
  *accepted = rng.uniform() < static_cast<double>(p[draft]) / static_cast<double>(q[draft]);
  if (*accepted) return draft;
  std::vector<float> residual(p.size());
  double total = 0;
  for (size_t i = 0; i < p.size(); ++i) total += residual[i] = std::max(0.0f, p[i] - q[i]);
  return total > 0 ? sample(residual, rng) : sample(p, rng);
}

}  // namespace nemotron::generate
