// AdamW and gradient clipping against torch.optim.AdamW + clip_grad_norm_ (fixture written by
// tools/make_optimizer_reference.py), hand-computed single steps, exact resume through the native
// checkpoint, the weight-decay grouping rule, errors, and the in-place gradient bookkeeping (clipping
// and Param::accumulate_grad keep each gradient's storage).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "checkpoint/native_checkpoint.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/param.h"
#include "train/optimizer.h"

using namespace nemotron;
using namespace nemotron::train;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(NEMOTRON_TEST_DATA) + "/train/adamw_reference.safetensors";

class Scratch {
 public:
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "nemotron-optim-test-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

// The fixture's parameters and gradients as owned tensors, plus its hyper-parameters.
struct Reference {
  io::SafetensorsFile file = io::SafetensorsFile::open(kFixture);
  json::Value config = json::parse(file.metadata().at("config"), "adamw_reference config");
  std::vector<std::string> names;
  std::vector<bool> decay;

  Reference() {
    for (const json::Value& p : config.at("params").items()) {
      names.push_back(p.at("name").as_string());
      decay.push_back(p.at("weight_decay").as_bool());
    }
  }
  Tensor get(const std::string& name) const { return file.tensor(name).clone(); }
  std::vector<double> lrs() const {
    std::vector<double> out;
    for (const json::Value& v : config.at("lrs").items()) out.push_back(v.as_double());
    return out;
  }
  AdamWOptions options() const {
    return {config.at("beta1").as_double(), config.at("beta2").as_double(), config.at("eps").as_double()};
  }
};

// Values and gradients the optimizer points into; kept at stable addresses.
struct Model {
  std::vector<Tensor> values, grads;
  std::vector<OptimizerParam> params;

  explicit Model(const Reference& ref) {
    values.reserve(ref.names.size());
    grads.reserve(ref.names.size());
    for (size_t i = 0; i < ref.names.size(); ++i) {
      values.push_back(ref.get("init." + ref.names[i]));
      grads.push_back(Tensor::zeros(values.back().shape(), DType::F32));
    }
    for (size_t i = 0; i < ref.names.size(); ++i) params.push_back({ref.names[i], &values[i], &grads[i], ref.decay[i]});
  }
  void load_grads(const Reference& ref, int step) {
    for (size_t i = 0; i < ref.names.size(); ++i)
      grads[i].copy_(ref.file.tensor("grad." + std::to_string(step) + "." + ref.names[i]));
  }
};

// ||a − b|| / ||b|| and the number of elements that differ in any bit.
struct Diff {
  double rel = 0.0;
  int64_t differing = 0;
};
Diff compare(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const float* x = a.data<float>();
  const float* y = b.data<float>();
  double err = 0.0, ref = 0.0;
  Diff d;
  for (int64_t i = 0; i < a.numel(); ++i) {
    err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += double(y[i]) * y[i];
    if (std::memcmp(&x[i], &y[i], sizeof(float)) != 0) ++d.differing;
  }
  d.rel = std::sqrt(err) / std::max(std::sqrt(ref), 1e-30);
  return d;
}

double run_reference_steps(const Reference& ref, Model& model, AdamW& adamw, int first, int last,
                           std::vector<double>* norms = nullptr) {
  const double max_norm = ref.config.at("max_norm").as_double();
  const double wd = ref.config.at("weight_decay").as_double();
  const std::vector<double> lrs = ref.lrs();
  double last_norm = 0.0;
  for (int k = first; k <= last; ++k) {
    model.load_grads(ref, k);
    last_norm = clip_grad_norm(model.params, max_norm);
    if (norms) norms->push_back(last_norm);
    adamw.step(lrs[k - 1], wd);
  }
  return last_norm;
}

}  // namespace

TEST(AdamW, MatchesTorchAdamWWithClipGradNorm) {
  Reference ref;
  Model model(ref);
  AdamW adamw(model.params, ref.options());
  std::vector<double> norms;
  run_reference_steps(ref, model, adamw, 1, 3, &norms);

  // clip_grad_norm_'s return values (torch accumulates the norm in fp32, we in fp64).
  const std::vector<float> torch_norms = ref.file.tensor("total_norm").to_f32_vector();
  ASSERT_EQ(norms.size(), torch_norms.size());
  for (size_t k = 0; k < norms.size(); ++k) EXPECT_NEAR(norms[k], torch_norms[k], 1e-6 * torch_norms[k]) << k;

  // Against torch.optim.AdamW: within 1e-6 relative per tensor. Against torch's op sequence replayed
  // with a correctly rounded sqrt and an fp64 norm (the fixture's "exact." tensors): bit for bit.
  double worst = 0.0;
  int64_t differing = 0, total = 0;
  for (size_t i = 0; i < ref.names.size(); ++i) {
    const std::string& n = ref.names[i];
    const Tensor state_m = adamw.state_tensors()[2 * i].second, state_v = adamw.state_tensors()[2 * i + 1].second;
    for (const auto& [kind, mine] : {std::pair{std::string("final."), model.values[i]},
                                     std::pair{std::string("exp_avg."), state_m},
                                     std::pair{std::string("exp_avg_sq."), state_v}}) {
      const Diff d = compare(mine, ref.get(kind + n));
      EXPECT_LE(d.rel, 1e-6) << kind << n;
      worst = std::max(worst, d.rel);
      differing += d.differing;
      total += mine.numel();
      EXPECT_EQ(compare(mine, ref.get("exact." + kind + n)).differing, 0) << "exact." << kind << n;
    }
  }
  EXPECT_EQ(adamw.step_count(), 3);
  std::printf("[ AdamW vs torch ] worst relative error %.3g; %lld of %lld elements differ in any bit\n", worst,
              static_cast<long long>(differing), static_cast<long long>(total));
}

TEST(AdamW, FirstStepMatchesTheFormulaInDouble) {
  // Step 1 by hand: m̂ = g, v̂ = g², p ← p(1 − lr·wd) − lr·g / (|g| + eps).
  Tensor value = Tensor::from_vector(std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f}, {2, 2});
  Tensor grad = Tensor::from_vector(std::vector<float>{0.1f, -0.3f, 0.0f, 2e-9f}, {2, 2});
  const std::vector<float> p0 = value.to_f32_vector(), g = grad.to_f32_vector();
  const double lr = 0.01, wd = 0.1, eps = 1e-8;
  AdamW adamw({{"w", &value, &grad, true}}, {0.9, 0.95, eps});
  adamw.step(lr, wd);
  const std::vector<float> p1 = value.to_f32_vector();
  for (size_t i = 0; i < p0.size(); ++i) {
    const double expected = p0[i] * (1 - lr * wd) - lr * g[i] / (std::fabs(double(g[i])) + eps);
    EXPECT_NEAR(p1[i], expected, 1e-6 * std::fabs(expected)) << i;
  }
}

TEST(AdamW, WeightDecayOnlyWhereFlagged) {
  // Zero gradients: Adam's update is zero, so only the decoupled decay moves the parameters.
  Tensor a = Tensor::full({3}, 2.0), b = Tensor::full({3}, 2.0);
  Tensor ga = Tensor::zeros({3}, DType::F32), gb = Tensor::zeros({3}, DType::F32);
  AdamW adamw({{"decayed", &a, &ga, true}, {"kept", &b, &gb, false}}, {});
  adamw.step(0.5, 0.1);
  for (float v : a.to_f32_vector()) EXPECT_EQ(v, 2.0f * static_cast<float>(1.0 - 0.5 * 0.1));
  for (float v : b.to_f32_vector()) EXPECT_EQ(v, 2.0f);
}

TEST(AdamW, MegatronWeightDecayGroups) {
  EXPECT_TRUE(megatron_applies_weight_decay("backbone.layers.0.mixer.in_proj.weight", {64, 32}));
  EXPECT_TRUE(megatron_applies_weight_decay("backbone.layers.0.mixer.conv1d.weight", {48, 1, 4}));
  EXPECT_FALSE(megatron_applies_weight_decay("backbone.layers.0.mixer.conv1d.bias", {48}));
  EXPECT_FALSE(megatron_applies_weight_decay("backbone.layers.0.norm.weight", {32}));
  EXPECT_FALSE(megatron_applies_weight_decay("backbone.layers.0.mixer.A_log", {8}));
  EXPECT_FALSE(megatron_applies_weight_decay("some.linear.bias", {4, 4}));  // biases by name, whatever the shape
  EXPECT_TRUE(megatron_applies_weight_decay("lm_head.weight", {100, 32}));
}

TEST(ClipGradNorm, ScalesToMaxNormAndReturnsPreClipNorm) {
  Tensor v1 = Tensor::zeros({1}, DType::F32), v2 = Tensor::zeros({1, 1}, DType::F32);
  Tensor g1 = Tensor::from_vector(std::vector<float>{3.0f}, {1});
  Tensor g2 = Tensor::from_vector(std::vector<float>{4.0f}, {1, 1});
  std::vector<OptimizerParam> params = {{"a", &v1, &g1, false}, {"b", &v2, &g2, true}};
  EXPECT_EQ(grad_sq_norm_fp64(params), 25.0);
  EXPECT_EQ(clip_grad_norm(params, 1.0), 5.0);
  // torch: coef = fp32(1 / (5 + 1e-6)) * 1, grads multiplied in fp32.
  const float coef = (1.0f / (5.0f + static_cast<float>(1e-6))) * 1.0f;
  EXPECT_EQ(g1.item(), 3.0f * coef);
  EXPECT_EQ(g2.item(), 4.0f * coef);
  EXPECT_NEAR(std::sqrt(grad_sq_norm_fp64(params)), 1.0, 1e-6);

  // Below the limit, and with clipping off: untouched.
  g1.fill_(0.3);
  g2.fill_(0.4);
  EXPECT_NEAR(clip_grad_norm(params, 1.0), 0.5, 1e-7);
  EXPECT_EQ(g1.item(), 0.3f);
  g1.fill_(30);
  const double g2_value = 0.4f;
  EXPECT_EQ(clip_grad_norm(params, 0.0), static_cast<float>(std::sqrt(900.0 + g2_value * g2_value)));
  EXPECT_EQ(g1.item(), 30.0f);
}

TEST(ClipGradNorm, NonFiniteNormLeavesGradientsForTheCallerToSkip) {
  Tensor v = Tensor::zeros({2}, DType::F32);
  Tensor g = Tensor::from_vector(std::vector<float>{1.0f, std::numeric_limits<float>::infinity()}, {2});
  std::vector<OptimizerParam> params = {{"a", &v, &g, true}};
  EXPECT_FALSE(std::isfinite(clip_grad_norm(params, 1.0)));
  EXPECT_EQ(g.to_f32_vector()[0], 1.0f);
  zero_grads(params);
  EXPECT_EQ(g.to_f32_vector(), (std::vector<float>{0.0f, 0.0f}));
}

TEST(AdamW, ResumeThroughNativeCheckpointIsBitExact) {
  Reference ref;
  // Uninterrupted: steps 1..3.
  Model straight(ref);
  AdamW adamw_straight(straight.params, ref.options());
  run_reference_steps(ref, straight, adamw_straight, 1, 3);

  // Steps 1..2, save weights + optimizer state as the trainer would, restore into fresh objects.
  Scratch scratch;
  {
    Model first(ref);
    AdamW adamw(first.params, ref.options());
    run_reference_steps(ref, first, adamw, 1, 2);
    std::vector<std::pair<std::string, Tensor>> all;
    for (size_t i = 0; i < ref.names.size(); ++i) all.emplace_back(ref.names[i], first.values[i]);
    for (auto& named : adamw.state_tensors()) all.push_back(named);
    std::vector<checkpoint::ShardSpec> shards;
    for (const auto& [name, t] : all) shards.push_back({name, t.shape(), -1, {}});
    checkpoint::Writer writer(scratch.path, 2, {});
    writer.add_file("model_tp0_ep0_pp0.safetensors", shards, [](const std::string&) { return DType::F32; });
    writer.write_all([&](const checkpoint::ShardSpec& spec) {
      for (const auto& [name, t] : all)
        if (name == spec.name) return t;
      return Tensor();
    });
    writer.set_extra_metadata(json::Value::object({{"optimizer", adamw.state_scalars()}}));
    writer.finish();
  }
  checkpoint::Reader reader = checkpoint::Reader::open(scratch.path);
  Model resumed(ref);
  for (size_t i = 0; i < ref.names.size(); ++i) resumed.values[i].copy_(reader.read(ref.names[i]));
  AdamW adamw_resumed(resumed.params, ref.options());
  adamw_resumed.load_state(reader.extra().at("optimizer"), [&](const std::string& n) { return reader.read(n); });
  EXPECT_EQ(adamw_resumed.step_count(), 2);
  run_reference_steps(ref, resumed, adamw_resumed, 3, 3);

  for (size_t i = 0; i < ref.names.size(); ++i) {
    EXPECT_EQ(std::memcmp(resumed.values[i].raw_data(), straight.values[i].raw_data(), straight.values[i].nbytes()), 0)
        << ref.names[i];
  }
  const auto a = adamw_resumed.state_tensors(), b = adamw_straight.state_tensors();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(std::memcmp(a[i].second.raw_data(), b[i].second.raw_data(), b[i].second.nbytes()), 0) << a[i].first;
}

TEST(AdamW, StateNames) {
  Tensor v = Tensor::zeros({2}, DType::F32), g = Tensor::zeros({2}, DType::F32);
  AdamW adamw({{"backbone.norm_f.weight", &v, &g, false}}, {});
  const auto state = adamw.state_tensors();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "optimizer.exp_avg.backbone.norm_f.weight");
  EXPECT_EQ(state[1].first, "optimizer.exp_avg_sq.backbone.norm_f.weight");
  EXPECT_EQ(json::dump(adamw.state_scalars()),
            R"({"optimizer": "adamw", "step": 0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08})");
}

TEST(AdamW, RejectsBadParameters) {
  Tensor v = Tensor::zeros({2, 3}, DType::F32), g = Tensor::zeros({2, 3}, DType::F32);
  Tensor g_wrong = Tensor::zeros({3, 2}, DType::F32), v_bf16 = Tensor::zeros({2, 3}, DType::BF16);
  Tensor strided = Tensor::zeros({3, 2}, DType::F32).transpose(0, 1);
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { AdamW({{"w", &v, &g, true}, {"w", &v, &g, true}}, {}); }).find("listed twice"),
            std::string::npos);
  EXPECT_NE(message([&] { AdamW({{"w", &v, &g_wrong, true}}, {}); }).find("gradient shape [3, 2]"), std::string::npos);
  EXPECT_NE(message([&] { AdamW({{"w", &v_bf16, &g, true}}, {}); }).find("contiguous F32 tensor"), std::string::npos);
  EXPECT_NE(message([&] { AdamW({{"w", &v, &strided, true}}, {}); }).find("contiguous F32 tensor"), std::string::npos);
  EXPECT_NE(message([&] { AdamW({{"w", &v, &g, true}}, {1.0, 0.9, 1e-8}); }).find("adam_beta1"), std::string::npos);
}

TEST(AdamW, BadStateIsRejectedAndLeavesTheOptimizerUnchanged) {
  Tensor v = Tensor::zeros({2, 2}, DType::F32), g = Tensor::full({2, 2}, 1.0);
  AdamW adamw({{"w", &v, &g, true}}, {});
  adamw.step(0.1, 0.0);
  const std::vector<float> before = adamw.state_tensors()[0].second.to_f32_vector();
  auto load = [&](json::Value scalars, std::function<Tensor(const std::string&)> read) {
    try {
      adamw.load_state(scalars, read);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  json::Value good = adamw.state_scalars();
  good["step"] = json::Value(int64_t{7});
  auto missing = [](const std::string& n) -> Tensor { throw Error("no tensor " + n); };
  auto wrong_shape = [](const std::string&) { return Tensor::zeros({4}, DType::F32); };
  auto wrong_dtype = [](const std::string&) { return Tensor::zeros({2, 2}, DType::BF16); };
  EXPECT_NE(load(good, missing).find("no tensor optimizer.exp_avg.w"), std::string::npos);
  EXPECT_NE(load(good, wrong_shape).find("shape [4]"), std::string::npos);
  EXPECT_NE(load(good, wrong_dtype).find("expected F32"), std::string::npos);
  json::Value sgd = good;
  sgd["optimizer"] = json::Value("sgd");
  EXPECT_NE(load(sgd, wrong_shape).find("no AdamW state"), std::string::npos);
  EXPECT_EQ(adamw.step_count(), 1);
  EXPECT_EQ(adamw.state_tensors()[0].second.to_f32_vector(), before);

  auto zeros = [](const std::string&) { return Tensor::zeros({2, 2}, DType::F32); };
  EXPECT_EQ(load(good, zeros), "no error");
  EXPECT_EQ(adamw.step_count(), 7);
  EXPECT_EQ(adamw.state_tensors()[0].second.to_f32_vector(), std::vector<float>(4, 0.0f));
}

TEST(ClipGradNorm, ScalesEveryGradientInPlace) {
  Tensor v1 = Tensor::zeros({2}, DType::F32), v2 = Tensor::zeros({3}, DType::F32);
  Tensor g1 = Tensor::from_vector(std::vector<float>{3.0f, 0.0f}, {2});
  Tensor g2 = Tensor::from_vector(std::vector<float>{0.0f, 4.0f, 0.0f}, {3});
  Tensor alias = g2;  // a handle on the same storage sees the clipped values
  std::vector<OptimizerParam> params = {{"a", &v1, &g1, true}, {"b", &v2, &g2, true}};
  const void* storage = g2.raw_data();
  EXPECT_EQ(clip_grad_norm(params, 2.5), 5.0);
  EXPECT_EQ(g2.raw_data(), storage);
  const float coef = (1.0f / (5.0f + static_cast<float>(1e-6))) * 2.5f;
  EXPECT_EQ(alias.to_f32_vector(), (std::vector<float>{0.0f, 4.0f * coef, 0.0f}));
  EXPECT_EQ(g1.to_f32_vector(), (std::vector<float>{3.0f * coef, 0.0f}));
}

TEST(ParamGradient, AccumulatesInPlaceInFp32) {
  Param p = Param::whole("w", {2, 3});
  p.value = Tensor::zeros({2, 3}, DType::F32);
  const Tensor g1 = Tensor::from_vector(std::vector<float>{1.5f, -2, 3, 0.25f, 5, -6}, {2, 3});
  p.accumulate_grad(g1);  // allocates the gradient (zeros + g1)
  ASSERT_TRUE(p.grad.defined());
  EXPECT_EQ(p.grad.to_f32_vector(), g1.to_f32_vector());
  const void* storage = p.grad.raw_data();
  // A BF16 gradient in another layout: converted exactly, added in fp32, in the same storage.
  const Tensor g2 = Tensor::from_vector(std::vector<float>{0.5f, 1, 1e-3f, 2, 4, 8}, {3, 2}).to(DType::BF16);
  p.accumulate_grad(g2.transpose(0, 1));
  EXPECT_EQ(p.grad.raw_data(), storage);
  const std::vector<float> g2t = g2.transpose(0, 1).to(DType::F32).contiguous().to_f32_vector();
  std::vector<float> expect = g1.to_f32_vector();
  for (size_t i = 0; i < expect.size(); ++i) expect[i] += g2t[i];
  EXPECT_EQ(p.grad.to_f32_vector(), expect);
  EXPECT_THROW(p.accumulate_grad(Tensor::zeros({3, 2}, DType::F32)), Error);  // wrong shape

  Param frozen = Param::whole("bias", {2});
  frozen.value = Tensor::zeros({2}, DType::F32);
  frozen.requires_grad = false;
  frozen.accumulate_grad(Tensor::zeros({2}, DType::F32));
  EXPECT_FALSE(frozen.grad.defined());
}
