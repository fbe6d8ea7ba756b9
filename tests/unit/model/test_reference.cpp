// The whole model against transformers: the fixtures under tests/data/models/ (made by
// tools/make_model_reference.py) hold tiny HF checkpoints and transformers' outputs for them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "io/safetensors.h"
#include "model/hf_model.h"
#include "model/moe.h"
#include "common/test_util.h"

using namespace nemotron;
using test::max_err_over_std;

namespace {

constexpr double kTolerance = 1e-4;  // max |ours - reference| / std(reference)

std::string fixture_dir(const std::string& name) {
  // NEMOTRON_MODEL_FIXTURES points at a freshly generated set (tools/make_model_reference.py --out).
  const char* override_dir = std::getenv("NEMOTRON_MODEL_FIXTURES");
  return (override_dir ? std::string(override_dir) : std::string(NEMOTRON_TEST_DATA) + "/models") + "/" + name;
}

struct Fixture {
  std::string dir;
  io::SafetensorsFile reference;
  Tensor ids;
};

Fixture open_fixture(const std::string& name) {
  std::string dir = fixture_dir(name);
  return {dir, io::SafetensorsFile::open(dir + "/reference.safetensors"),
          io::SafetensorsFile::open(dir + "/reference.safetensors").tensor("input_ids")};
}

void report(const std::string& what, double err) {
  std::cout << "  " << what << ": max err / std = " << err << "\n";
  EXPECT_LT(err, kTolerance) << what;
}

class Reference : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Reference, LogitsHiddenStatesAndRoutingMatchTransformers) {
  Fixture f = open_fixture(GetParam());
  HybridModel model = load_hf_model(f.dir);
  HybridModel::Output out = model.forward(f.ids, /*keep_hidden_states=*/true);

  report(GetParam() + " logits", max_err_over_std(out.logits, f.reference.tensor("logits")));
  for (int64_t l = 0; l < model.config.num_hidden_layers(); ++l) {
    report(GetParam() + " hidden." + std::to_string(l),
           max_err_over_std(out.hidden_states[l + 1], f.reference.tensor("hidden." + std::to_string(l))));
    if (model.config.layers[l] != LayerKind::MoE) continue;
    // The experts each token chose (sorted ids), from this layer's normalised input.
    const Block& block = model.layers[l];
    Routing r = static_cast<const MoE&>(*block.mixer).route(block.norm.forward(out.hidden_states[l]));
    std::vector<int64_t> ours = r.indices.to_i64_vector();
    const int64_t k = model.config.num_experts_per_tok;
    for (size_t t = 0; t < ours.size(); t += k) std::sort(ours.begin() + t, ours.begin() + t + k);
    EXPECT_EQ(ours, f.reference.tensor("topk_idx." + std::to_string(l)).to_i64_vector()) << "layer " << l;
  }
}

TEST_P(Reference, SequentialScanGivesTheSameLogits) {
  Fixture f = open_fixture(GetParam());
  ModelOptions options;
  options.sequential_ssd = true;
  report(GetParam() + " logits (sequential SSD)",
         max_err_over_std(load_hf_model(f.dir, {}, options).forward(f.ids).logits, f.reference.tensor("logits")));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Reference,
                         ::testing::Values("tiny_hybrid_legacy", "tiny_super_mtp", "tiny_hybrid_newcfg"));

TEST(ReferenceMtp, DepthLogitsAndHiddenMatchTheFixture) {
  Fixture f = open_fixture("tiny_super_mtp");
  HybridModel model = load_hf_model(f.dir);
  ASSERT_EQ(model.mtp.size(), 1u);
  int64_t depths = std::stoll(f.reference.metadata().at("mtp_depths"));
  ASSERT_EQ(depths, 2);
  HybridModel::Output out = model.forward(f.ids);
  std::vector<HybridModel::MtpDepth> mtp = model.mtp_forward(out.final_hidden, f.ids, depths);
  ASSERT_EQ(mtp.size(), 2u);
  for (int64_t k = 1; k <= depths; ++k) {
    Tensor ref_logits = f.reference.tensor("mtp_logits." + std::to_string(k));
    ASSERT_EQ(mtp[k - 1].logits.shape(), ref_logits.shape());
    report("tiny_super_mtp mtp_logits." + std::to_string(k), max_err_over_std(mtp[k - 1].logits, ref_logits));
    report("tiny_super_mtp mtp_hidden." + std::to_string(k),
           max_err_over_std(mtp[k - 1].hidden, f.reference.tensor("mtp_hidden." + std::to_string(k))));
  }
  EXPECT_THROW(model.mtp_forward(out.final_hidden, f.ids, f.ids.size(1)), Error);
}

TEST(ReferenceDtFloor, TransformersFloorIsAnOption) {
  Fixture f = open_fixture("tiny_hybrid_newcfg");
  io::SafetensorsFile floored = io::SafetensorsFile::open(f.dir + "/reference_dt_floor.safetensors");
  Tensor ids = floored.tensor("input_ids");
  ModelOptions options;
  options.dt_floor_at_time_step_min = true;
  report("tiny_hybrid_newcfg logits (dt floor)",
         max_err_over_std(load_hf_model(f.dir, {}, options).forward(ids).logits, floored.tensor("logits")));
  // The default (no floor) must not match the floored reference: the fixture makes the floor matter.
  EXPECT_GT(max_err_over_std(load_hf_model(f.dir).forward(ids).logits, floored.tensor("logits")), 1e-2);
}

// ---- bad weights: each a clear error naming the tensor ----

namespace {

std::string load_error(const std::string& dir, const std::function<void(WeightMap&)>& edit) {
  io::HfCheckpoint ckpt = io::HfCheckpoint::open(dir);
  WeightMap weights = hf_weight_map(ckpt);
  edit(weights);
  HybridModel model(ModelConfig::from_json(ckpt.config()));
  try {
    model.load_weights(weights, dir);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(LoadWeights, BadTensorsAreClearErrors) {
  std::string dir = fixture_dir("tiny_super_mtp");
  const std::string name = "backbone.layers.0.mixer.in_proj.weight";

  std::string e = load_error(dir, [&](WeightMap& w) { w.erase(name); });
  EXPECT_TRUE(has(e, "missing") && has(e, name)) << e;

  e = load_error(dir, [&](WeightMap& w) { w.erase("mtp.layers.1.final_layernorm.weight"); });
  EXPECT_TRUE(has(e, "missing") && has(e, "mtp.layers.1.final_layernorm.weight")) << e;

  e = load_error(dir, [&](WeightMap& w) { w["backbone.layers.0.mixer.surprise.weight"] = w.at(name); });
  EXPECT_TRUE(has(e, "unexpected") && has(e, "surprise")) << e;

  e = load_error(dir, [&](WeightMap& w) { w[name] = w.at(name).narrow(0, 0, 5); });
  EXPECT_TRUE(has(e, name) && has(e, "shape") && has(e, "[5, 32]")) << e;

  e = load_error(dir, [&](WeightMap& w) { w[name] = Tensor::zeros(w.at(name).shape(), DType::I64); });
  EXPECT_TRUE(has(e, name) && has(e, "I64")) << e;

  // The singular embedding name some exports use is accepted.
  io::HfCheckpoint ckpt = io::HfCheckpoint::open(dir);
  WeightMap w = hf_weight_map(ckpt);
  w["backbone.embedding.weight"] = w.at("backbone.embeddings.weight");
  w.erase("backbone.embeddings.weight");
  HybridModel model(ModelConfig::from_json(ckpt.config()));
  EXPECT_NO_THROW(model.load_weights(w, dir));
}

TEST(LoadWeights, BadTokenIdsAreClearErrors) {
  HybridModel model = load_hf_model(fixture_dir("tiny_hybrid_legacy"));
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{1, 2, 128}, {1, 3});
  try {
    model.forward(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "128") && has(e.what(), "vocabulary")) << e.what();
  }
  EXPECT_THROW(model.forward(Tensor::from_vector(std::vector<int64_t>{1, 2}, {2})), Error);
}
