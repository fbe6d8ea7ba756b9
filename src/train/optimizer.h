// AdamW with torch.optim.AdamW semantics, global gradient-norm clipping with
// torch.nn.utils.clip_grad_norm_ semantics, and Megatron's rule for which parameters get weight decay.
//
// The optimizer knows nothing about the model: it updates a list of OptimizerParam (fp32 master
// weights and their fp32 gradients, owned by the caller, all on the CPU or all on one GPU). The
// arithmetic is the op ops::adamw_step_, run over the whole list at once by
// ops::multi_tensor_adamw_step_ (a few kernel launches on a GPU, not one per tensor). Its state — the
// step count and, per parameter, exp_avg and exp_avg_sq (fp32, same shape as the parameter) — is
// exposed as named tensors plus a small JSON of scalars, so the trainer stores it in the native
// checkpoint next to the weights (each state tensor is sharded exactly like its parameter).
//
// Trainer usage, once per iteration (Megatron's order):
//     zero_grads(params);                          // before the first micro-batch
//     ... forward/backward of every micro-batch, gradients accumulate in place ...
//     double norm = clip_grad_norm(params, cfg.optimizer.clip_grad);   // pre-clip norm, for the log
//     if (!std::isfinite(norm)) { skip the update, count a nan iteration }
//     adamw.step(scheduler.lr(), scheduler.weight_decay());
//     scheduler.step(global_batch_size);
// With several model-parallel ranks, replace clip_grad_norm by grad_sq_norm_fp64 over the parameters
// this rank owns uniquely (a tensor replicated over TP ranks counted on one of them, as Megatron's
// param_is_not_tensor_parallel_duplicate does) + an all-reduce of the sums + the square root +
// clip_grads_with_norm on every rank with that same total.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/json.h"

namespace nemotron::train {

// One trainable tensor as the optimizer sees it. value and grad are contiguous F32 tensors of equal
// shape on one device, owned by the caller and alive as long as the optimizer.
struct OptimizerParam {
  std::string name;  // unique; names the state tensors in checkpoints
  Tensor* value = nullptr;
  Tensor* grad = nullptr;
  bool weight_decay = true;  // false: this parameter is in Megatron's no-weight-decay group
};

// Megatron-Core's default grouping (_get_param_groups): no weight decay for biases and for every
// 1-D parameter (norm weights, A_log, D, dt_bias, ...).
bool megatron_applies_weight_decay(const std::string& name, const Shape& shape);

// Sets every gradient to zero.
void zero_grads(const std::vector<OptimizerParam>& params);

// Sum of squares of every gradient element, accumulated in fp64 in a fixed order (so the result does
// not depend on the thread count or the timing): the local part of the global norm. One host
// synchronisation on a GPU (ops::multi_tensor_sum_of_squares).
double grad_sq_norm_fp64(const std::vector<OptimizerParam>& params);

// Scales every gradient in place by min(max_norm / (total_norm + 1e-6), 1) computed as torch does it in fp32:
// the norm is rounded to fp32, 1e-6 added in fp32, the quotient formed as reciprocal × max_norm.
// Does nothing when max_norm <= 0 (clipping off) or total_norm is not finite (the caller skips the
// step; scaling by NaN would destroy the gradients for nothing).
void clip_grads_with_norm(const std::vector<OptimizerParam>& params, double max_norm, double total_norm);

// torch.nn.utils.clip_grad_norm_(params, max_norm) for one process: returns the pre-clip global L2
// norm of all gradients (rounded to fp32, as torch returns an fp32 tensor) and clips in place.
double clip_grad_norm(const std::vector<OptimizerParam>& params, double max_norm);

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class AdamW {
 public:
  // Checks the parameters (unique names, contiguous F32, value/grad shapes equal, every tensor on one
  // device) and allocates zeroed state on that device.
  AdamW(std::vector<OptimizerParam> params, AdamWOptions options);

  // One update of every parameter with this learning rate; `weight_decay` applies only to the
  // parameters whose weight_decay flag is set (decoupled: p *= 1 - lr * weight_decay first).
  void step(double lr, double weight_decay);
  void zero_grad() { zero_grads(params_); }

  const std::vector<OptimizerParam>& params() const { return params_; }
  const AdamWOptions& options() const { return options_; }
  int64_t step_count() const { return step_; }

  // ---- state for checkpoints ----
  static std::string exp_avg_name(const std::string& param_name) { return "optimizer.exp_avg." + param_name; }
  static std::string exp_avg_sq_name(const std::string& param_name) { return "optimizer.exp_avg_sq." + param_name; }
  // (name, tensor) for every state tensor, in parameter order, exp_avg before exp_avg_sq. The
  // tensors view the live state: write them out before the next step.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // {"optimizer": "adamw", "step": N, "beta1": ..., "beta2": ..., "eps": ...}
  json::Value state_scalars() const;
  // Restores a state saved by state_tensors/state_scalars. `read(name)` returns the stored tensor
  // (any float dtype is refused except F32, so a reload is bit-exact) or throws when it is absent.
  // Everything is checked before anything changes; errors name the parameter and the mismatch.
  // Hyper-parameters that differ from the checkpoint's are a warning: the configured ones win.
  void load_state(const json::Value& scalars, const std::function<Tensor(const std::string&)>& read);

 private:
  std::vector<OptimizerParam> params_;
  AdamWOptions options_;
  std::vector<Tensor> exp_avg_;
  std::vector<Tensor> exp_avg_sq_;
  std::vector<bool> weight_decay_;  // params_[k].weight_decay, in the form the multi-tensor op takes
  int64_t step_ = 0;
};

}  // namespace nemotron::train
