#include "model/mamba2.h"

#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {
namespace mamba {

SsdOutputs ssd_chunked(const SsdInputs& in, int64_t chunk_size) {
  NT_CHECK(chunk_size >= 1, "ssd: chunk_size must be at least 1, got {}", chunk_size);
  return ops::ssd_scan(in, chunk_size);
}

}  // namespace mamba

Mamba2Mixer::Mamba2Mixer(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix,
                         const ModelOptions& options) {
  const int64_t nh = cfg.mamba_num_heads, G = cfg.n_groups, N = cfg.ssm_state_size, P = cfg.mamba_head_dim;
  const int64_t inner = cfg.mamba_d_inner(), gn = G * N, K = cfg.conv_kernel, H = cfg.hidden_size;
  // Whole groups per rank, so that B/C and the gated norm's groups stay local.
  Range groups = ps.tp_shard(G, "Mamba n_groups (config 'n_groups') across tensor-parallel ranks");
  Range heads = ps.tp_shard(nh, "Mamba heads (config 'mamba_num_heads') across tensor-parallel ranks");
  num_heads = heads.length;
  head_dim = P;
  n_groups = groups.length;
  state_size = N;
  d_inner = num_heads * P;
  conv_dim = d_inner + 2 * n_groups * N;
  conv_kernel = K;
  chunk_size = cfg.chunk_size;
  dt_min = options.dt_floor_at_time_step_min ? cfg.time_step_min : cfg.time_step_limit_min;
  dt_max = cfg.time_step_limit_max;
  sequential_ssd = options.sequential_ssd;
  eps = cfg.layer_norm_epsilon;
  adds_out_bias = ps.tp_rank == 0;

  const std::string what = "Mamba channels across tensor-parallel ranks";
  // in_proj rows are [z | x | B | C | dt]; each rank keeps its share of every component.
  std::vector<Range> in_rows = shard_blocks({inner, inner, gn, gn, nh}, ps.tp_size, ps.tp_rank, what);
  std::vector<Range> conv_channels = shard_blocks({inner, gn, gn}, ps.tp_size, ps.tp_rank, what);
  const int64_t in_rows_full = cfg.mamba_in_proj_rows(), conv_full = cfg.mamba_conv_dim();
  Range inner_cols = ps.tp_shard(inner, what);

  in_proj_weight = Param::sharded(prefix + "in_proj.weight", {in_rows_full, H}, 0, in_rows);
  conv1d_weight = Param::sharded(prefix + "conv1d.weight", {conv_full, 1, K}, 0, conv_channels);
  dt_bias = Param::sharded(prefix + "dt_bias", {nh}, 0, {heads});
  A_log = Param::sharded(prefix + "A_log", {nh}, 0, {heads});
  D = Param::sharded(prefix + "D", {nh}, 0, {heads});
  norm_weight = Param::sharded(prefix + "norm.weight", {inner}, 0, {inner_cols});
  out_proj_weight = Param::sharded(prefix + "out_proj.weight", {H, inner}, 1, {inner_cols});
  if (cfg.use_conv_bias) conv1d_bias = Param::sharded(prefix + "conv1d.bias", {conv_full}, 0, conv_channels);
  if (cfg.use_bias) {
    in_proj_bias = Param::sharded(prefix + "in_proj.bias", {in_rows_full}, 0, in_rows);
    out_proj_bias = Param::whole(prefix + "out_proj.bias", {H});
  }
}

std::vector<Param*> Mamba2Mixer::params() {
  std::vector<Param*> p = {&in_proj_weight};
  if (in_proj_bias) p.push_back(&*in_proj_bias);
  p.push_back(&conv1d_weight);
  if (conv1d_bias) p.push_back(&*conv1d_bias);
  for (Param* q : {&dt_bias, &A_log, &D, &norm_weight, &out_proj_weight}) p.push_back(q);
  if (out_proj_bias) p.push_back(&*out_proj_bias);
  return p;
}

namespace {
// Tensors that meet in one op (cat) share a dtype: the one of the activation they stand for.
Tensor as_dtype(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : t.to(dtype); }
}  // namespace

Tensor Mamba2Mixer::forward(const Tensor& x) const {
  NT_CHECK(x.dim() == 3, "Mamba2Mixer: input must be [batch, seq, hidden], got {}", x.str());
  const int64_t batch = x.size(0), seq = x.size(1), gn = n_groups * state_size;

  Tensor zxbcdt = ops::linear(x, in_proj_weight.compute(), in_proj_bias ? in_proj_bias->compute() : Tensor());
  Tensor z = zxbcdt.narrow(-1, 0, d_inner).contiguous();
  Tensor xBC = zxbcdt.narrow(-1, d_inner, conv_dim).contiguous();
  Tensor dt_raw = zxbcdt.narrow(-1, d_inner + conv_dim, num_heads).contiguous();

  xBC = ops::causal_conv1d_silu(xBC, conv1d_weight.compute(), conv1d_bias ? conv1d_bias->compute() : Tensor());

  mamba::SsdInputs in;
  in.x = xBC.narrow(-1, 0, d_inner).contiguous().view({batch, seq, num_heads, head_dim});
  in.B = xBC.narrow(-1, d_inner, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.C = xBC.narrow(-1, d_inner + gn, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.dt = ops::discretize_dt(dt_raw, dt_bias.compute(), dt_min, dt_max);
  in.A = ops::scale(ops::exp(A_log.compute()), -1.0f);
  in.D = D.compute();
  Tensor y = ops::ssd_scan(in, sequential_ssd ? 0 : chunk_size).y;

  y = ops::gated_rms_norm(y.view({batch, seq, d_inner}), z, norm_weight.compute(), d_inner / n_groups, eps);
  return ops::linear(y, out_proj_weight.compute(),
                     out_proj_bias && adds_out_bias ? out_proj_bias->compute() : Tensor());
}

namespace {
struct MambaSaved : Saved {
  Tensor x;                  // mixer input [B, T, H]
  Tensor z, xbc_pre, dt_raw;  // the in_proj output's parts
  mamba::SsdInputs ssd;      // x, B, C (after conv + SiLU), dt (discretized), A, D
  Tensor y;                  // SSD output [B, T, d_inner], the gated norm's input
  Tensor normed;             // gated norm output, out_proj's input
};
}  // namespace

Tensor Mamba2Mixer::forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext&) {
  NT_CHECK(x.dim() == 3, "Mamba2Mixer: input must be [batch, seq, hidden], got {}", x.str());
  const int64_t batch = x.size(0), seq = x.size(1), gn = n_groups * state_size;
  auto s = std::make_unique<MambaSaved>();
  s->x = x;
  Tensor zxbcdt = ops::linear(x, in_proj_weight.compute(), in_proj_bias ? in_proj_bias->compute() : Tensor());
  s->z = zxbcdt.narrow(-1, 0, d_inner).contiguous();
  s->xbc_pre = zxbcdt.narrow(-1, d_inner, conv_dim).contiguous();
  s->dt_raw = zxbcdt.narrow(-1, d_inner + conv_dim, num_heads).contiguous();
  Tensor xBC =
      ops::causal_conv1d_silu(s->xbc_pre, conv1d_weight.compute(), conv1d_bias ? conv1d_bias->compute() : Tensor());
  mamba::SsdInputs& in = s->ssd;
  in.x = xBC.narrow(-1, 0, d_inner).contiguous().view({batch, seq, num_heads, head_dim});
  in.B = xBC.narrow(-1, d_inner, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.C = xBC.narrow(-1, d_inner + gn, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.dt = ops::discretize_dt(s->dt_raw, dt_bias.compute(), dt_min, dt_max);
  in.A = ops::scale(ops::exp(A_log.compute()), -1.0f);
  in.D = D.compute();
  s->y = ops::ssd_scan(in, sequential_ssd ? 0 : chunk_size).y.view({batch, seq, d_inner});
  s->normed = ops::gated_rms_norm(s->y, s->z, norm_weight.compute(), d_inner / n_groups, eps);
  Tensor out = ops::linear(s->normed, out_proj_weight.compute(),
                           out_proj_bias && adds_out_bias ? out_proj_bias->compute() : Tensor());
  saved = std::move(s);
  return out;
}

Tensor Mamba2Mixer::backward(const Tensor& dy, const Saved& saved_base, TrainContext&) {
  const auto& s = static_cast<const MambaSaved&>(saved_base);
  const int64_t batch = s.x.size(0), seq = s.x.size(1), gn = n_groups * state_size;
  Tensor dnormed = grad::linear_backward(s.normed, dy, out_proj_weight,
                                         out_proj_bias && adds_out_bias ? &*out_proj_bias : nullptr);
  ops::GatedNormGrads gn_grads =
      ops::gated_rms_norm_backward(s.y, s.z, norm_weight.compute(), d_inner / n_groups, eps, dnormed);
  norm_weight.accumulate_grad(gn_grads.dweight);

  ops::SsdGrads ssd =
      ops::ssd_scan_backward(s.ssd, gn_grads.dy.view({batch, seq, num_heads, head_dim}), chunk_size);
  D.accumulate_grad(ssd.dD);
  A_log.accumulate_grad(ops::mul(ssd.dA, s.ssd.A));  // A = −exp(A_log): dA/dA_log = A
  ops::DtGrads dt = ops::discretize_dt_backward(s.dt_raw, dt_bias.compute(), dt_min, dt_max, ssd.ddt);
  dt_bias.accumulate_grad(dt.d_bias);

  const DType conv_dtype = s.xbc_pre.dtype();
  Tensor dxbc = ops::cat({as_dtype(ssd.dx.view({batch, seq, d_inner}), conv_dtype),
                          as_dtype(ssd.dB.view({batch, seq, gn}), conv_dtype),
                          as_dtype(ssd.dC.view({batch, seq, gn}), conv_dtype)},
                         -1);
  ops::ConvGrads conv = ops::causal_conv1d_silu_backward(
      s.xbc_pre, conv1d_weight.compute(), conv1d_bias ? conv1d_bias->compute() : Tensor(), dxbc);
  conv1d_weight.accumulate_grad(conv.dweight);
  if (conv1d_bias) conv1d_bias->accumulate_grad(conv.dbias);

  const DType in_dtype = s.z.dtype();
  Tensor dzxbcdt =
      ops::cat({as_dtype(gn_grads.dz, in_dtype), as_dtype(conv.dx, in_dtype), as_dtype(dt.d_raw, in_dtype)}, -1);
  return grad::linear_backward(s.x, dzxbcdt, in_proj_weight, in_proj_bias ? &*in_proj_bias : nullptr);
}

}  // namespace nemotron
