// Sampling against hand-computed cases of transformers' logits processors, the documented RNG
// against an independent Python rendering of splitmix64 + xoshiro256**, and speculative sampling's
// output distribution against the target distribution.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "generate/sampling.h"

using namespace nemotron;
using namespace nemotron::generate;

namespace {

std::vector<double> softmax(std::vector<double> x) {
  double mx = *std::max_element(x.begin(), x.end()), total = 0;
  for (double& v : x) total += v = std::exp(v - mx);
  for (double& v : x) v /= total;
  return x;
}

void expect_probs(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
}

SamplingParams sampling() {
  SamplingParams p;
  p.do_sample = true;
  return p;
}

const std::vector<float> kLogits = {1, 2, 3, 4};

TEST(Rng, MatchesTheReferenceXoshiro256StarStarSeededBySplitmix64) {
  // Values from a Python transcription of the published algorithms (seed ^ stream·0xD1B54A32D192ED03
  // fed to splitmix64 four times, then xoshiro256**).
  Rng a(0, 0);
  EXPECT_EQ(a.next_u64(), 0x99ec5f36cb75f2b4ull);
  EXPECT_EQ(a.next_u64(), 0xbf6e1f784956452aull);
  EXPECT_EQ(a.next_u64(), 0x1a5f849d4933e6e0ull);
  Rng b(42, 3);
  EXPECT_EQ(b.next_u64(), 0x3cf860af930cc916ull);
  EXPECT_EQ(b.next_u64(), 0x1ce8fd0513794c95ull);
  EXPECT_NEAR(Rng(0, 0).uniform(), 0.6012629994179048, 1e-16);
  EXPECT_NEAR(Rng(42, 3).uniform(), 0.2381649426125022, 1e-16);
}

TEST(Sampling, TemperatureTopKTopPMinPAsTransformers) {
  SamplingParams p = sampling();
  expect_probs(sampling_distribution(kLogits, p), softmax({1, 2, 3, 4}));
  p.temperature = 2;
  expect_probs(sampling_distribution(kLogits, p), softmax({0.5, 1, 1.5, 2}));

  p = sampling();
  p.top_k = 2;
  std::vector<double> two = softmax({3, 4});
  expect_probs(sampling_distribution(kLogits, p), {0, 0, two[0], two[1]});
  // Ties with the k-th value stay (transformers compares against the k-th largest value).
  expect_probs(sampling_distribution(std::vector<float>{1, 3, 3, 0}, p), {0, 0.5, 0.5, 0});

  // softmax(1,2,3,4) = .032 .087 .237 .644; cumulative from the least likely: .032 .119 .356 1.
  p = sampling();
  p.top_p = 0.5;  // drop while cumulative <= 0.5: ids 0, 1, 2
  expect_probs(sampling_distribution(kLogits, p), {0, 0, 0, 1});
  p.top_p = 0.7;  // drop while cumulative <= 0.3: ids 0, 1
  expect_probs(sampling_distribution(kLogits, p), {0, 0, two[0], two[1]});

  p = sampling();
  p.min_p = 0.2;  // threshold 0.2 · 0.644 = 0.129: ids 0 and 1 go
  expect_probs(sampling_distribution(kLogits, p), {0, 0, two[0], two[1]});

  // Filters compose on what the previous one left: top-k 3 then top-p 0.7 of softmax(2, 3, 4).
  p = sampling();
  p.top_k = 3;
  p.top_p = 0.7;  // softmax(2,3,4) = .090 .245 .665: drop while cumulative <= .3 -> id 1 only
  expect_probs(sampling_distribution(kLogits, p), {0, 0, two[0], two[1]});
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerId) {
  std::vector<float> l = {2, -2, 1, 5};
  apply_repetition_penalty(l, std::vector<int32_t>{0, 1, 1, 0}, 2.0);
  EXPECT_EQ(l, (std::vector<float>{1, -4, 1, 5}));
  EXPECT_THROW(apply_repetition_penalty(l, std::vector<int32_t>{4}, 2.0), Error);
}

TEST(Sampling, ArgmaxTakesTheFirstOfEqualMaxima) {
  EXPECT_EQ(argmax(std::vector<float>{1, 5, 5, 2}), 1);
  EXPECT_EQ(argmax(std::vector<float>{-1}), 0);
}

TEST(Sampling, DrawsFollowTheWeightsAndNeverPickZeroWeight) {
  const std::vector<float> w = {0.1f, 0.0f, 0.6f, 0.3f};
  Rng rng(7);
  std::vector<int> counts(4, 0);
  const int n = 100000;
  for (int i = 0; i < n; ++i) ++counts[sample(w, rng)];
  EXPECT_EQ(counts[1], 0);
  for (int i : {0, 2, 3}) EXPECT_NEAR(counts[i] / double(n), w[i], 0.01) << i;
  // Unnormalised weights give the same draws as normalised ones.
  Rng r1(3), r2(3);
  const std::vector<float> scaled = {1, 0, 6, 3};
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample(w, r1), sample(scaled, r2));
}

TEST(Sampling, SpeculativeAcceptOrResampleIsDistributedAsTheTarget) {
  const std::vector<float> p = {0.5f, 0.3f, 0.2f, 0.0f}, q = {0.2f, 0.2f, 0.3f, 0.3f};
  Rng rng(11);
  std::vector<int> counts(4, 0);
  int accepted = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const int32_t draft = sample(q, rng);
    bool kept = false;
    ++counts[accept_or_resample(p, q, draft, rng, &kept)];
    accepted += kept;
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(counts[i] / double(n), p[i], 0.006) << i;
  // Acceptance rate = sum min(p, q) = 0.2 + 0.2 + 0.2 + 0 = 0.6.
  EXPECT_NEAR(accepted / double(n), 0.6, 0.006);
  bool kept = false;
  EXPECT_THROW(accept_or_resample(p, std::vector<float>{1, 0, 0, 0}, 1, rng, &kept), Error);
}

TEST(Sampling, BadParametersAreErrors) {
  auto bad = [](auto change) {
    SamplingParams p = sampling();
    change(p);
    return p;
  };
  EXPECT_THROW(bad([](SamplingParams& p) { p.temperature = 0; }).validate(), Error);
  EXPECT_THROW(bad([](SamplingParams& p) { p.temperature = NAN; }).validate(), Error);
  EXPECT_THROW(bad([](SamplingParams& p) { p.top_k = -1; }).validate(), Error);
  EXPECT_THROW(bad([](SamplingParams& p) { p.top_p = 0; }).validate(), Error);
  EXPECT_THROW(bad([](SamplingParams& p) { p.top_p = 1.5; }).validate(), Error);
  EXPECT_THROW(bad([](SamplingParams& p) { p.min_p = -0.1; }).validate(), Error);
  EXPECT_THROW(bad([](SamplingParams& p) { p.repetition_penalty = 0; }).validate(), Error);
  EXPECT_NO_THROW(sampling().validate());
}

}  // namespace
