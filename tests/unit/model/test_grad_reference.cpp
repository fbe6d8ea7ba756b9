// Parameter gradients against PyTorch autograd: the fixtures' grads*.safetensors files (made by
// tools/make_model_reference.py) hold the loss and every parameter's gradient for a batch, computed
// in float64 by transformers (plain next-token loss) or by tools/nemotron_h_plain.py (loss mask,
// Megatron's MTP loss and seq_aux_loss).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "io/safetensors.h"
#include "model/hf_model.h"
#include "common/test_util.h"

using namespace nemotron;
using test::rel_norm_err;

namespace {

constexpr double kTolerance = 1e-4;  // ||ours − reference|| / ||reference|| per tensor

std::string fixture_dir(const std::string& name) {
  const char* override_dir = std::getenv("NEMOTRON_MODEL_FIXTURES");
  return (override_dir ? std::string(override_dir) : std::string(NEMOTRON_TEST_DATA) + "/models") + "/" + name;
}

double meta_number(const io::SafetensorsFile& f, const std::string& key) { return std::stod(f.metadata().at(key)); }

// Compares every gradient in `files` (by parameter name) with the model's; every trainable
// parameter must be covered. Returns the worst relative error.
double compare_grads(HybridModel& model, const std::vector<io::SafetensorsFile*>& files, const std::string& what) {
  double worst = 0;
  std::string worst_name;
  size_t compared = 0;
  for (Param* p : model.params()) {
    if (!p->requires_grad) continue;
    const io::SafetensorsFile* file = nullptr;
    for (const io::SafetensorsFile* f : files)
      if (f->contains(p->name)) file = f;
    EXPECT_TRUE(file) << what << ": no reference gradient for " << p->name;
    if (!file) continue;
    const double err = rel_norm_err(p->grad, file->tensor(p->name));
    EXPECT_LT(err, kTolerance) << what << ": " << p->name;
    if (err > worst) {
      worst = err;
      worst_name = p->name;
    }
    ++compared;
  }
  std::cout << "  " << what << ": " << compared << " gradients, worst ||ours - ref|| / ||ref|| = " << worst << " ("
            << worst_name << ")\n";
  return worst;
}

}  // namespace

TEST(GradReference, NextTokenLossMatchesTransformersAutograd) {
  // tiny_hybrid_legacy: all four mixer kinds, plain MoE; loss = mean CE over the B·(T−1) positions
  // that have a next token, i.e. labels = tokens shifted left and the last position masked.
  const std::string dir = fixture_dir("tiny_hybrid_legacy");
  io::SafetensorsFile ref = io::SafetensorsFile::open(dir + "/grads.safetensors");
  HybridModel model = load_hf_model(dir);
  Tensor ids = ref.tensor("input_ids");
  const int64_t B = ids.size(0), T = ids.size(1);
  std::vector<int64_t> tokens = ids.to_i64_vector(), labels(B * T, 0);
  std::vector<float> mask(B * T, 1.0f);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t + 1 < T; ++t) labels[b * T + t] = tokens[b * T + t + 1];
    mask[b * T + T - 1] = 0.0f;
  }
  TrainBatch batch{ids, Tensor::from_vector(labels, {B, T}), Tensor::from_vector(mask, {B, T})};
  model.zero_grad();
  LossReport r = model.forward_backward(batch, {});
  const double loss = meta_number(ref, "loss");
  std::cout << "  tiny_hybrid_legacy loss " << r.lm_loss << " reference " << loss << "\n";
  EXPECT_NEAR(r.lm_loss, loss, 1e-5 * loss);
  EXPECT_EQ(r.tokens, B * (T - 1));
  EXPECT_EQ(r.total, r.lm_loss);
  compare_grads(model, {&ref}, "tiny_hybrid_legacy");
}

namespace {

struct TrainingCase {
  std::string fixture, file;
};

std::vector<double> split_numbers(const std::string& s) {
  std::vector<double> out;
  size_t at = 0;
  while (at < s.size()) {
    size_t comma = s.find(',', at);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(std::stod(s.substr(at, comma - at)));
    at = comma + 1;
  }
  return out;
}

}  // namespace

class TrainingGradReference : public ::testing::TestWithParam<TrainingCase> {};

TEST_P(TrainingGradReference, LossesAndGradientsMatchFloat64Autograd) {
  const TrainingCase& c = GetParam();
  const std::string dir = fixture_dir(c.fixture);
  io::SafetensorsFile ref = io::SafetensorsFile::open(dir + "/" + c.file + ".safetensors");
  std::vector<io::SafetensorsFile> extra;
  std::vector<io::SafetensorsFile*> files = {&ref};
  const std::string mtp_path = dir + "/" + c.file + ".mtp.safetensors";
  if (std::filesystem::exists(mtp_path)) {
    extra.push_back(io::SafetensorsFile::open(mtp_path));
    files.push_back(&extra.back());
  }
  HybridModel model = load_hf_model(dir);
  TrainBatch batch{ref.tensor("input_ids"), ref.tensor("labels"), ref.tensor("loss_mask")};
  TrainOptions options;
  options.mtp_depths = std::stoll(ref.metadata().at("mtp_depths"));
  options.mtp_loss_scaling_factor = meta_number(ref, "mtp_loss_scaling_factor");
  options.moe_aux_loss_coeff = meta_number(ref, "moe_aux_loss_coeff");
  model.zero_grad();
  LossReport r = model.forward_backward(batch, options);

  const std::string what = c.fixture + " " + c.file;
  std::cout << "  " << what << ": lm " << r.lm_loss << " aux " << r.aux_loss << " total " << r.total << " (reference "
            << meta_number(ref, "loss_total") << ")\n";
  EXPECT_NEAR(r.lm_loss, meta_number(ref, "loss_lm"), 1e-5 * r.lm_loss);
  EXPECT_NEAR(r.aux_loss, meta_number(ref, "loss_aux"), 1e-5 * std::max(r.aux_loss, 1e-3));
  EXPECT_NEAR(r.total, meta_number(ref, "loss_total"), 1e-5 * r.total);
  std::vector<double> mtp = options.mtp_depths ? split_numbers(ref.metadata().at("loss_mtp")) : std::vector<double>{};
  ASSERT_EQ(r.mtp_loss.size(), mtp.size());
  for (size_t k = 0; k < mtp.size(); ++k) EXPECT_NEAR(r.mtp_loss[k], mtp[k], 1e-5 * mtp[k]) << "depth " << k + 1;
  std::vector<float> mask = batch.loss_mask.to_f32_vector();
  int64_t nonzero = 0;
  for (float m : mask) nonzero += m != 0;
  EXPECT_EQ(r.tokens, nonzero);
  EXPECT_LT(nonzero, batch.loss_mask.numel());  // the fixture's mask has zeros
  compare_grads(model, files, what);

  // evaluate() gives the same losses without the aux term and without touching the gradients.
  Tensor before = model.lm_head.grad.clone();
  LossReport e = model.evaluate(batch, options);
  EXPECT_NEAR(e.lm_loss, r.lm_loss, 1e-6 * r.lm_loss);
  for (size_t k = 0; k < mtp.size(); ++k) EXPECT_NEAR(e.mtp_loss[k], r.mtp_loss[k], 1e-6 * mtp[k]);
  EXPECT_EQ(e.aux_loss, 0.0);
  EXPECT_NEAR(e.total, r.total - r.aux_loss, 1e-6 * r.total);
  EXPECT_EQ(test::max_rel_diff(model.lm_head.grad, before), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainingGradReference,
                         ::testing::Values(TrainingCase{"tiny_super_mtp", "grads_mtp"},
                                           TrainingCase{"tiny_super_mtp", "grads_mtp_aux"},
                                           TrainingCase{"tiny_hybrid_newcfg", "grads_aux"}),
                         [](const auto& info) { return info.param.fixture + "_" + info.param.file; });
