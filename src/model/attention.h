// The attention mixer `*` (spec/model.md §3.7): grouped-query causal self-attention without
// positional encoding, scale 1/sqrt(head_dim), no biases.
#pragma once
#include "kernels/ops.h"
#include "model/layer.h"

namespace nemotron {

// Causal attention is the op ops::causal_attention (kernels/ops.h): q [B, T, nq·hd], k and v
// [B, T, nkv·hd]; query head i reads KV head i / (nq / nkv). These names are kept for the tests.
inline Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                               int64_t num_kv_heads, int64_t head_dim, float scale) {
  return ops::causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, scale).out;
}

// The same, also returning each query's log-sum-exp of its scaled scores, F32 [B, nq, T] (what the
// backward, ops::causal_attention_backward, needs to rebuild the softmax without storing it).
using AttentionOutput = ops::AttentionOutput;
inline AttentionOutput causal_attention_train(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                              int64_t num_kv_heads, int64_t head_dim, float scale) {
  return ops::causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, scale, /*with_lse=*/true);
}

// Parameters under `prefix`: q_proj.weight, k_proj.weight, v_proj.weight, o_proj.weight. Tensor
// parallelism splits heads by KV group (each rank holds nkv/tp KV heads and their query heads);
// o_proj is row-parallel.
class Attention : public Mixer {
 public:
  Attention(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix);
  LayerKind kind() const override { return LayerKind::Attention; }
  Tensor forward(const Tensor& x) const override;
  Tensor forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) override;
  Tensor backward(const Tensor& dy, const Saved& saved, TrainContext& ctx) override;
  std::vector<Param*> params() override { return {&q_proj, &k_proj, &v_proj, &o_proj}; }
  float scale() const;

  int64_t num_heads, num_kv_heads, head_dim;  // held by this rank
  Param q_proj, k_proj, v_proj, o_proj;
};

}  // namespace nemotron
