// Incremental decoding with caches (src/model/decode_*) against running the whole sequence through
// HybridModel::forward, which itself matches transformers (tests/unit/model/test_reference.cpp):
// every position's logits, for chunked prefill, one-token steps, batches of rows with different
// cache lengths, rollback to a checkpoint, and the MTP block's own KV cache.
#include <gtest/gtest.h>

#include <iostream>

#include "io/safetensors.h"
#include "model/decode_step.h"
#include "model/hf_model.h"
#include "test_util.h"

using namespace nemotron;
using namespace nemotron::decode;
using test::ids_tensor;
using test::max_err_over_std;
using test::model_dir;
using test::reference_ids;

namespace {

// fp32 with a different summation order than the full forward (chunk boundaries, sequential scan).
constexpr double kTolerance = 2e-5;

std::vector<float> position(const Tensor& logits, int64_t b, int64_t t) {
  return logits.select(0, b).select(0, t).to_f32_vector();
}

std::vector<int32_t> slice(const std::vector<int32_t>& v, size_t begin, size_t end) {
  return std::vector<int32_t>(v.begin() + begin, v.begin() + end);
}

// Logits [1, n, V] of ids[begin, end) run as one step on `cache`.
Tensor step(const HybridModel& m, SequenceCache& cache, const std::vector<int32_t>& ids, size_t begin, size_t end,
            bool checkpoints = false) {
  SequenceCache* caches[] = {&cache};
  return model_step(m, ids_tensor(slice(ids, begin, end)), caches, {LogitsAt::All, checkpoints}).logits;
}

class CachedDecoding : public ::testing::TestWithParam<std::string> {};

TEST_P(CachedDecoding, ChunkedPrefillThenSingleTokensMatchTheFullForward) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const std::vector<int32_t> ids = reference_ids(GetParam(), 0);
  const Tensor full = model.forward(ids_tensor(ids)).logits;
  const size_t T = ids.size();
  // (prefilled positions, prefill chunk): all single steps; a prefill in odd chunks that cross the
  // SSD chunk size; the whole sequence in one prefill.
  for (auto [prefill, chunk] : {std::pair<size_t, size_t>{0, 1}, {T / 2 + 1, 3}, {T, T}}) {
    SequenceCache cache(model);
    double worst = 0;
    size_t pos = 0;
    while (pos < T) {
      const size_t n = pos < prefill ? std::min(chunk, prefill - pos) : 1;
      Tensor logits = step(model, cache, ids, pos, pos + n);
      for (size_t i = 0; i < n; ++i)
        worst = std::max(worst, max_err_over_std(position(logits, 0, i), position(full, 0, pos + i)));
      pos += n;
    }
    EXPECT_EQ(cache.length, static_cast<int64_t>(T));
    std::cout << "  " << GetParam() << " prefill " << prefill << " in chunks of " << chunk
              << ": max err / std over all positions = " << worst << "\n";
    EXPECT_LT(worst, kTolerance);
  }
}

TEST_P(CachedDecoding, BatchRowsWithDifferentLengthsStepTogether) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const std::vector<int32_t> a = reference_ids(GetParam(), 0), b = reference_ids(GetParam(), 1);
  const Tensor full_a = model.forward(ids_tensor(a)).logits, full_b = model.forward(ids_tensor(b)).logits;
  SequenceCache ca(model), cb(model);
  step(model, ca, a, 0, 7);
  step(model, cb, b, 0, 3);
  SequenceCache* caches[] = {&ca, &cb};
  double worst = 0;
  for (size_t s = 0; s < 10; ++s) {
    std::vector<int64_t> next = {a[7 + s], b[3 + s]};
    Tensor logits = model_step(model, Tensor::from_vector(next, {2, 1}), caches).logits;
    worst = std::max(worst, max_err_over_std(position(logits, 0, 0), position(full_a, 0, 7 + s)));
    worst = std::max(worst, max_err_over_std(position(logits, 1, 0), position(full_b, 0, 3 + s)));
  }
  std::cout << "  " << GetParam() << " batch of lengths 7 and 3: max err / std = " << worst << "\n";
  EXPECT_LT(worst, kTolerance);
}

TEST_P(CachedDecoding, RollbackToACheckpointForgetsTheRejectedPositions) {
  const HybridModel model = load_hf_model(model_dir(GetParam()));
  const std::vector<int32_t> ids = reference_ids(GetParam(), 0);
  const Tensor full = model.forward(ids_tensor(ids)).logits;
  SequenceCache cache(model);
  step(model, cache, ids, 0, 6);
  // A verification step whose positions after the first are wrong tokens.
  std::vector<int32_t> wrong = {ids[6], (ids[7] + 1) % 128, (ids[8] + 5) % 128, 17};
  SequenceCache* caches[] = {&cache};
  model_step(model, ids_tensor(wrong), caches, {LogitsAt::All, true});
  cache.keep_first(1);
  EXPECT_EQ(cache.length, 7);
  // Then a step whose first three positions are right: keep those.
  std::vector<int32_t> partly = {ids[7], ids[8], ids[9], 3};
  Tensor logits = model_step(model, ids_tensor(partly), caches, {LogitsAt::All, true}).logits;
  cache.keep_first(3);
  double worst = 0;
  for (size_t i = 0; i < 3; ++i) worst = std::max(worst, max_err_over_std(position(logits, 0, i), position(full, 0, 7 + i)));
  for (size_t pos = 10; pos < ids.size(); ++pos)
    worst = std::max(worst, max_err_over_std(position(step(model, cache, ids, pos, pos + 1), 0, 0), position(full, 0, pos)));
  std::cout << "  " << GetParam() << " after two rollbacks: max err / std = " << worst << "\n";
  EXPECT_LT(worst, kTolerance);
  EXPECT_THROW(cache.keep_first(1), Error);  // the last step kept no checkpoints
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CachedDecoding,
                         ::testing::Values("tiny_hybrid_legacy", "tiny_super_mtp", "tiny_hybrid_newcfg"));

TEST(MtpStep, CachedPositionsMatchTheFullMtpForwardAndTheFloat64Reference) {
  const std::string name = "tiny_super_mtp";
  const HybridModel model = load_hf_model(model_dir(name));
  const std::vector<int32_t> ids = reference_ids(name, 0);
  const int64_t T = static_cast<int64_t>(ids.size());
  const HybridModel::Output main = model.forward(ids_tensor(ids));
  const Tensor expected = model.mtp_forward(main.final_hidden, ids_tensor(ids), 1)[0].logits;  // [1, T-1, V]
  const Tensor reference =
      io::SafetensorsFile::open(model_dir(name) + "/reference.safetensors").tensor("mtp_logits.1").narrow(0, 0, 1);

  SequenceCache cache(model);
  SequenceCache* caches[] = {&cache};
  auto run = [&](int64_t begin, int64_t end) {
    Tensor h = main.final_hidden.narrow(1, begin, end - begin).contiguous();
    return mtp_step(model, h, ids_tensor(slice(ids, begin + 1, end + 1)), caches, LogitsAt::All).logits;
  };
  double worst = 0, worst_ref = 0;
  auto check = [&](const Tensor& logits, int64_t begin) {
    for (int64_t i = 0; i < logits.size(1); ++i) {
      worst = std::max(worst, max_err_over_std(position(logits, 0, i), position(expected, 0, begin + i)));
      worst_ref = std::max(worst_ref, max_err_over_std(position(logits, 0, i), position(reference, 0, begin + i)));
    }
  };
  check(run(0, 5), 0);
  check(run(5, 6), 5);
  check(run(6, T - 1), 6);
  EXPECT_EQ(cache.mtp_length, T - 1);
  // Drop positions 10.. and run them again one at a time.
  cache.truncate_mtp(10);
  for (int64_t p = 10; p < T - 1; ++p) check(run(p, p + 1), p);
  std::cout << "  MTP cached vs full: " << worst << ", vs float64 reference: " << worst_ref << "\n";
  EXPECT_LT(worst, kTolerance);
  EXPECT_LT(worst_ref, 1e-4);
}

TEST(DecodeStep, RejectsMismatchedInputs) {
  const HybridModel model = load_hf_model(model_dir("tiny_hybrid_legacy"));
  SequenceCache cache(model);
  SequenceCache* one[] = {&cache};
  EXPECT_THROW(model_step(model, Tensor::from_vector(std::vector<int64_t>{1, 2}, {2, 1}), one), Error);
  EXPECT_THROW(model_step(model, Tensor::from_vector(std::vector<int64_t>{128}, {1, 1}), one), Error);  // vocab is 128
  EXPECT_THROW(mtp_step(model, Tensor::zeros({1, 1, 32}, DType::F32), Tensor::from_vector(std::vector<int64_t>{1}, {1, 1}), one),
               Error);  // no MTP block
}

}  // namespace
