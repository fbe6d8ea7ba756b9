#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/log.h"
#include "kernels/ops.h"

namespace nemotron::train {

namespace {

void check_param(const OptimizerParam& p) {
  NT_CHECK(!p.name.empty(), "optimizer: a parameter has an empty name");
  NT_CHECK(p.value && p.grad, "optimizer: parameter '{}' has no value or no gradient tensor", p.name);
  for (const Tensor* t : {p.value, p.grad}) {
    const char* what = t == p.value ? "value" : "gradient";
    NT_CHECK(t->defined(), "optimizer: parameter '{}': the {} tensor is undefined", p.name, what);
    NT_CHECK(t->dtype() == DType::F32 && t->is_contiguous(),
             "optimizer: parameter '{}': the {} must be a contiguous F32 tensor, got {}", p.name, what, t->str());
  }
  NT_CHECK(p.value->shape() == p.grad->shape(), "optimizer: parameter '{}': value shape {} != gradient shape {}",
           p.name, shape_str(p.value->shape()), shape_str(p.grad->shape()));
  NT_CHECK(p.value->device() == p.grad->device(), "optimizer: parameter '{}': value on {} but gradient on {}",
           p.name, p.value->device().str(), p.grad->device().str());
}

}  // namespace

bool megatron_applies_weight_decay(const std::string& name, const Shape& shape) {
  const std::string bias = ".bias";
  bool is_bias = name.size() >= bias.size() && name.compare(name.size() - bias.size(), bias.size(), bias) == 0;
  return !is_bias && shape.size() != 1;
}

void zero_grads(const std::vector<OptimizerParam>& params) {
  for (const OptimizerParam& p : params) p.grad->zero_();
}

namespace {
std::vector<Tensor> grads_of(const std::vector<OptimizerParam>& params) {
  std::vector<Tensor> grads;
  grads.reserve(params.size());
  for (const OptimizerParam& p : params) grads.push_back(*p.grad);  // handles: the same storage
  return grads;
}
}  // namespace

double grad_sq_norm_fp64(const std::vector<OptimizerParam>& params) {
  return ops::multi_tensor_sum_of_squares(grads_of(params));
}

void clip_grads_with_norm(const std::vector<OptimizerParam>& params, double max_norm, double total_norm) {
  if (max_norm <= 0.0 || !std::isfinite(total_norm)) return;
  // torch: clip_coef = max_norm / (total_norm + 1e-6) on an fp32 tensor; Python's scalar / tensor
  // is tensor.reciprocal() * scalar; then clamp(max=1) and an fp32 multiply of every gradient.
  const float denom = static_cast<float>(total_norm) + static_cast<float>(1e-6);
  const float coef = std::min((1.0f / denom) * static_cast<float>(max_norm), 1.0f);
  if (coef == 1.0f) return;  // multiplying by one changes nothing
  ops::multi_tensor_scale_(grads_of(params), coef);
}

double clip_grad_norm(const std::vector<OptimizerParam>& params, double max_norm) {
  const double norm = static_cast<float>(std::sqrt(grad_sq_norm_fp64(params)));
  clip_grads_with_norm(params, max_norm, norm);
  return norm;
}

AdamW::AdamW(std::vector<OptimizerParam> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  NT_CHECK(options_.beta1 >= 0.0 && options_.beta1 < 1.0, "optimizer.adam_beta1 must be in [0, 1), got {}",
           options_.beta1);
  NT_CHECK(options_.beta2 >= 0.0 && options_.beta2 < 1.0, "optimizer.adam_beta2 must be in [0, 1), got {}",
           options_.beta2);
  NT_CHECK(options_.eps >= 0.0, "optimizer.adam_eps must be >= 0, got {}", options_.eps);
  std::set<std::string> names;
  for (const OptimizerParam& p : params_) {
    check_param(p);
    NT_CHECK(names.insert(p.name).second, "optimizer: parameter '{}' is listed twice", p.name);
    NT_CHECK(p.value->device() == params_[0].value->device(),
             "optimizer: parameter '{}' is on {} but '{}' on {}; the optimizer updates parameters of one device",
             p.name, p.value->device().str(), params_[0].name, params_[0].value->device().str());
    exp_avg_.push_back(Tensor::zeros(p.value->shape(), DType::F32, p.value->device()));
    exp_avg_sq_.push_back(Tensor::zeros(p.value->shape(), DType::F32, p.value->device()));
    weight_decay_.push_back(p.weight_decay);
  }
}

void AdamW::step(double lr, double weight_decay) {
  ++step_;
  // Scalars exactly as torch's single-tensor AdamW forms them: in double on the host, then rounded
  // to fp32 where an fp32 tensor op consumes them.
  const double step = static_cast<double>(step_);
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(options_.beta2, step);
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);  // Python's x ** 0.5

  ops::AdamWScalars scalars;
  scalars.lerp_weight = static_cast<float>(1.0 - options_.beta1);
  scalars.beta2 = static_cast<float>(options_.beta2);
  scalars.one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
  scalars.bc2_sqrt = static_cast<float>(bias_correction2_sqrt);
  scalars.eps = static_cast<float>(options_.eps);
  scalars.neg_step_size = static_cast<float>(-step_size);
  // For the decay group only; the others are multiplied by exactly 1, which leaves them unchanged.
  scalars.decay_factor = static_cast<float>(1.0 - lr * weight_decay);

  // One multi-tensor step over every parameter (a few launches on a GPU instead of one per tensor).
  std::vector<Tensor> values;
  values.reserve(params_.size());
  for (const OptimizerParam& p : params_) values.push_back(*p.value);
  ops::multi_tensor_adamw_step_(values, grads_of(params_), exp_avg_, exp_avg_sq_, weight_decay_, scalars);
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t k = 0; k < params_.size(); ++k) {
    out.emplace_back(exp_avg_name(params_[k].name), exp_avg_[k]);
    out.emplace_back(exp_avg_sq_name(params_[k].name), exp_avg_sq_[k]);
  }
  return out;
}

json::Value AdamW::state_scalars() const {
  return json::Value::object({{"optimizer", json::Value("adamw")},
                              {"step", json::Value(step_)},
                              {"beta1", json::Value(options_.beta1)},
                              {"beta2", json::Value(options_.beta2)},
                              {"eps", json::Value(options_.eps)}});
}

void AdamW::load_state(const json::Value& scalars, const std::function<Tensor(const std::string&)>& read) {
  NT_CHECK(scalars.is_object(), "optimizer state: expected a JSON object, got {}",
           json::Value::kind_name(scalars.kind()));
  const json::Value* type = scalars.find("optimizer");
  NT_CHECK(type && type->is_string() && type->as_string() == "adamw",
           "optimizer state: the checkpoint holds no AdamW state (\"optimizer\": {}); start from its weights "
           "with checkpoint.pretrained_checkpoint=DIR and checkpoint.load=null, which starts the optimizer afresh",
           type ? json::dump(*type) : std::string("missing"));
  const json::Value* step_value = scalars.find("step");
  NT_CHECK(step_value && step_value->is_number(), "optimizer state: \"step\" is missing or not a number");
  const int64_t step = step_value->as_int();
  NT_CHECK(step >= 0, "optimizer state: \"step\" is negative ({})", step);
  for (const auto& [key, configured] : {std::pair<const char*, double>{"beta1", options_.beta1},
                                        {"beta2", options_.beta2},
                                        {"eps", options_.eps}}) {
    const json::Value* saved = scalars.find(key);
    if (saved && saved->is_number() && saved->as_double() != configured)
      log_warning("optimizer: the checkpoint was trained with {} = {}, continuing with the configured {}", key,
                  saved->as_double(), configured);
  }

  // Read and check everything first, so a bad checkpoint leaves the optimizer untouched.
  std::vector<Tensor> loaded;
  for (const auto& [name, current] : state_tensors()) {
    Tensor t = read(name);
    NT_CHECK(t.defined(), "optimizer state: tensor '{}' is missing from the checkpoint", name);
    NT_CHECK(t.dtype() == DType::F32, "optimizer state: tensor '{}' is {}, expected F32", name,
             dtype_name(t.dtype()));
    NT_CHECK(t.shape() == current.shape(),
             "optimizer state: tensor '{}' has shape {} in the checkpoint but the parameter has shape {} "
             "(was the checkpoint written for another model or parallel layout?)",
             name, shape_str(t.shape()), shape_str(current.shape()));
    loaded.push_back(std::move(t));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    exp_avg_[k].copy_(loaded[2 * k]);
    exp_avg_sq_[k].copy_(loaded[2 * k + 1]);
  }
  step_ = step;
}

}  // namespace nemotron::train
