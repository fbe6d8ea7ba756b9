// Param: one rank's shard of one Hugging Face checkpoint tensor (DESIGN.md principles 3 and 4).
//
// A parameter is named by its HF checkpoint name and knows the shape of the whole HF tensor and
// which part of it this rank holds: nothing split (replicated), or, along one dimension, a list of
// ranges that are concatenated in order (Mamba's in_proj holds [z_r, x_r, B_r, C_r, dt_r]). Loading
// and export are then the same selection run forwards or backwards.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "parallel/parallel_state.h"

namespace nemotron {

// Tensors by HF checkpoint name, as read from a checkpoint (views of any float dtype).
using WeightMap = std::map<std::string, Tensor>;

struct Param {
  std::string name;           // HF checkpoint name, e.g. "backbone.layers.3.mixer.in_proj.weight"
  Shape full_shape;           // shape of the whole HF tensor
  int shard_dim = -1;         // -1: this rank holds the whole tensor
  std::vector<Range> ranges;  // parts of shard_dim held here, concatenated in this order
  Tensor value;               // F32, local_shape(); undefined until loaded. The master weight.
  // d(loss)/d(value), F32 of local_shape() on value's device, accumulated across micro-batches by the
  // layers' backward passes. Undefined until the first backward or zero_grad(). Parameters that are
  // not trained (the router's e_score_correction_bias, changed by the expert-bias rule instead) never
  // get one.
  Tensor grad;
  // Mixed precision (Megatron style): a BF16 copy of value that the GEMMs read, or undefined when the
  // layers compute with value itself (HybridModel::set_compute_dtype makes and refreshes it).
  Tensor working;
  bool requires_grad = true;

  // What the layers compute with: the working copy when there is one, else the master weight.
  const Tensor& compute() const { return working.defined() ? working : value; }

  // A replicated parameter.
  static Param whole(std::string name, Shape full_shape);
  // A parameter split along `dim`; the rank holds `ranges` of that dimension.
  static Param sharded(std::string name, Shape full_shape, int dim, std::vector<Range> ranges);

  bool is_sharded() const { return shard_dim >= 0; }
  Shape local_shape() const;
  // This rank's part of `full` (the whole HF tensor, any float dtype) as a contiguous F32 tensor.
  Tensor select_shard(const Tensor& full) const;
  // Loads value from the whole HF tensor, checking its shape and dtype.
  void load(const Tensor& full);

  // grad += g in place, in fp32 (g: local_shape(), any float dtype and layout, on value's device);
  // allocates a zero grad first when there is none. Does nothing for a parameter that does not
  // require a gradient.
  void accumulate_grad(const Tensor& g);
  // Sets grad to zeros (allocating it on value's device) when the parameter requires a gradient.
  void zero_grad();
  // grad, allocated as zeros on value's device when there is none yet (for in-place accumulation:
  // scatter-adds, ops::matmul_add_).
  Tensor& grad_buffer();
};

// Loads every parameter from `weights`. Errors name the tensor: missing, wrong shape (expected and
// actual), not a float dtype, or — when `reject_extra` — present in `weights` but not a parameter.
// `source` says where the weights came from (a directory, "weight map").
void load_params(const std::vector<Param*>& params, const WeightMap& weights, const std::string& source,
                 bool reject_extra = true);

}  // namespace nemotron
