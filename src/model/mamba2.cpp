#include "model/mamba2.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {
namespace mamba {

namespace {

Tensor f32(const Tensor& t) { return t.to(DType::F32).contiguous(); }

float silu(float v) { return v / (1.0f + std::exp(-v)); }

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// d silu(v) / dv = σ(v)·(1 + v·(1 − σ(v)))
float silu_grad(float v) {
  const float sg = sigmoid(v);
  return sg * (1.0f + v * (1.0f - sg));
}

// softplus as mamba_ssm and torch compute it: linear above 20.
float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

}  // namespace

Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi) {
  NT_CHECK(dt_raw.dim() == 3 && dt_bias.shape() == Shape({dt_raw.size(2)}),
           "discretize_dt: dt [batch, seq, heads] {} and dt_bias [heads] {} do not match", dt_raw.str(), dt_bias.str());
  if (!dt_raw.device().is_cpu()) {
    // On a device: the same function from elementwise ops. There is no clamp op, so
    // max(v, lo) = lo + relu(v − lo) and min(v, hi) = hi − relu(hi − v), which may differ from the
    // CPU loop in the last bit; a bound that cannot bind (lo <= 0, hi = ∞) is skipped.
    Tensor dt = ops::softplus(ops::add(dt_raw, dt_bias));
    const float flo = static_cast<float>(lo), fhi = static_cast<float>(hi);
    if (lo > 0.0)
      dt = ops::add_scalar(ops::unary(ops::Unary::Relu, ops::add_scalar(dt, -flo)), flo);
    if (std::isfinite(hi))
      dt = ops::add_scalar(ops::scale(ops::unary(ops::Unary::Relu, ops::add_scalar(ops::scale(dt, -1.0f), fhi)), -1.0f),
                           fhi);
    return dt;
  }
  Tensor dt = f32(dt_raw).clone(), bias = f32(dt_bias);
  int64_t nh = dt.size(2);
  float* p = dt.data<float>();
  const float* pb = bias.data<float>();
  for (int64_t i = 0; i < dt.numel(); ++i) {
    double v = softplus(p[i] + pb[i % nh]);
    p[i] = static_cast<float>(std::min(std::max(v, lo), hi));
  }
  return dt;
}

SsdOutputs ssd_chunked(const SsdInputs& in, int64_t chunk_size) {
  NT_CHECK(chunk_size >= 1, "ssd: chunk_size must be at least 1, got {}", chunk_size);
  return ops::ssd_scan(in, chunk_size);
}

ConvGrads causal_conv1d_silu_backward(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in,
                                      const Tensor& dout_in) {
  NT_CHECK(x_in.dim() == 3 && dout_in.shape() == x_in.shape(),
           "causal_conv1d backward: x {} and dout {} must be the same [batch, seq, channels]", x_in.str(),
           dout_in.str());
  const int64_t batch = x_in.size(0), seq = x_in.size(1), ch = x_in.size(2);
  Tensor w = f32(weight_in.dim() == 3 ? weight_in.reshape({weight_in.size(0), weight_in.size(2)}) : weight_in);
  NT_CHECK(w.dim() == 2 && w.size(0) == ch, "causal_conv1d backward: weight must be [{}, 1, K], got {}", ch,
           weight_in.str());
  const int64_t k = w.size(1);
  Tensor x = f32(x_in), dout = f32(dout_in), bias = bias_in.defined() ? f32(bias_in) : Tensor();
  const float *px = x.data<float>(), *pw = w.data<float>(), *pdo = dout.data<float>(),
              *pbias = bias.defined() ? bias.data<float>() : nullptr;
  // du = dout · silu'(u), with u recomputed.
  Tensor du = Tensor::empty({batch, seq, ch}, DType::F32);
  float* pdu = du.data<float>();
  parallel_for(batch * seq, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t b = bt / seq, t = bt % seq;
      for (int64_t c = 0; c < ch; ++c) {
        float u = pbias ? pbias[c] : 0.0f;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t src = t - (k - 1) + j;
          if (src >= 0) u += pw[c * k + j] * px[(b * seq + src) * ch + c];
        }
        pdu[bt * ch + c] = pdo[bt * ch + c] * silu_grad(u);
      }
    }
  });
  ConvGrads g;
  g.dx = Tensor::empty({batch, seq, ch}, DType::F32);
  float* pdx = g.dx.data<float>();
  parallel_for(batch * seq, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bs = begin; bs < end; ++bs) {
      const int64_t b = bs / seq, s0 = bs % seq;
      for (int64_t c = 0; c < ch; ++c) {
        float acc = 0.0f;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t t = s0 + (k - 1) - j;  // the output that read x[s0] through tap j
          if (t < seq) acc += pw[c * k + j] * pdu[(b * seq + t) * ch + c];
        }
        pdx[bs * ch + c] = acc;
      }
    }
  });
  // dweight [c, j] and dbias [c], summed over all (batch, token) rows.
  std::vector<double> sums = grad::sum_over_rows(batch * seq, ch * (k + 1), [&](int64_t begin, int64_t end, double* acc) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const int64_t b = bt / seq, t = bt % seq;
      for (int64_t c = 0; c < ch; ++c) {
        const double d = pdu[bt * ch + c];
        for (int64_t j = 0; j < k; ++j) {
          const int64_t src = t - (k - 1) + j;
          if (src >= 0) acc[c * k + j] += d * px[(b * seq + src) * ch + c];
        }
        acc[ch * k + c] += d;
      }
    }
  });
  g.dweight = Tensor::from_vector(std::vector<float>(sums.begin(), sums.begin() + ch * k), weight_in.shape());
  if (bias_in.defined()) g.dbias = Tensor::from_vector(std::vector<float>(sums.begin() + ch * k, sums.end()), {ch});
  return g;
}

DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi, const Tensor& ddt_in) {
  NT_CHECK(dt_raw.dim() == 3 && dt_bias.shape() == Shape({dt_raw.size(2)}) && ddt_in.shape() == dt_raw.shape(),
           "discretize_dt backward: dt {}, dt_bias {} and ddt {} do not match", dt_raw.str(), dt_bias.str(),
           ddt_in.str());
  Tensor raw = f32(dt_raw), bias = f32(dt_bias), ddt = f32(ddt_in);
  const int64_t nh = raw.size(2), rows = raw.numel() / nh;
  DtGrads g{Tensor::empty(raw.shape(), DType::F32), Tensor()};
  const float *pr = raw.data<float>(), *pb = bias.data<float>(), *pg = ddt.data<float>();
  float* pd = g.d_raw.data<float>();
  std::vector<double> db = grad::sum_over_rows(rows, nh, [&](int64_t begin, int64_t end, double* acc) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t h = 0; h < nh; ++h) {
        const float v = pr[r * nh + h] + pb[h];
        const double sp = softplus(v);
        const bool inside = sp >= lo && sp <= hi;
        const float d = inside ? pg[r * nh + h] * (v > 20.0f ? 1.0f : sigmoid(v)) : 0.0f;
        pd[r * nh + h] = d;
        acc[h] += d;
      }
    }
  });
  g.d_bias = Tensor::from_vector(std::vector<float>(db.begin(), db.end()), {nh});
  return g;
}

SsdGrads ssd_backward(const SsdInputs& in, const Tensor& dy_in, int64_t chunk_size) {
  ops::check_ssd_inputs(in);
  NT_CHECK(chunk_size >= 1, "ssd backward: chunk_size must be at least 1, got {}", chunk_size);
  NT_CHECK(dy_in.shape() == in.x.shape(), "ssd backward: dy {} must be shaped like x {}", dy_in.str(), in.x.str());
  Tensor x = f32(in.x), dt = f32(in.dt), A = f32(in.A), B = f32(in.B), C = f32(in.C), dy = f32(dy_in);
  Tensor D = in.D.defined() ? f32(in.D) : Tensor::zeros(A.shape(), DType::F32);
  const int64_t batch = x.size(0), seq = x.size(1), nh = x.size(2), p = x.size(3), groups = B.size(2), n = B.size(3);
  const int64_t heads_per_group = nh / groups, pn = p * n, Q = chunk_size, chunks = (seq + Q - 1) / Q;
  Tensor init = in.initial_state.defined() ? f32(in.initial_state) : Tensor::zeros({batch, nh, p, n}, DType::F32);

  SsdGrads g;
  g.dx = Tensor::zeros(x.shape(), DType::F32);
  g.ddt = Tensor::zeros(dt.shape(), DType::F32);
  g.dB = Tensor::zeros(B.shape(), DType::F32);
  g.dC = Tensor::zeros(C.shape(), DType::F32);
  g.d_initial_state = Tensor::zeros({batch, nh, p, n}, DType::F32);
  std::vector<double> dA_parts(batch * nh, 0.0), dD_parts(batch * nh, 0.0);  // per (batch row, head)

  const float *px = x.data<float>(), *pdt = dt.data<float>(), *pa = A.data<float>(), *pb = B.data<float>(),
              *pc = C.data<float>(), *pd = D.data<float>(), *pdy = dy.data<float>(), *pinit = init.data<float>();
  float *pdx = g.dx.data<float>(), *pddt = g.ddt.data<float>(), *pdb = g.dB.data<float>(), *pdc = g.dC.data<float>(),
        *pds0 = g.d_initial_state.data<float>();
  // One task per (batch row, group): the group's heads share B and C, so their dB, dC stay local.
  parallel_for(batch * groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> starts(chunks * pn), states(Q * pn), G(pn), gb(p);
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / groups, grp = bg % groups;
      auto tok = [&](int64_t t, int64_t h) { return (b * seq + t) * nh + h; };  // index of (b, t, h)
      auto bc = [&](int64_t t) { return ((b * seq + t) * groups + grp) * n; };  // offset of B/C at (b, t)
      for (int64_t h = grp * heads_per_group; h < (grp + 1) * heads_per_group; ++h) {
        const float Ah = pa[h], Dh = pd[h];
        // Forward sweep: the state entering every chunk.
        std::copy(pinit + (b * nh + h) * pn, pinit + (b * nh + h + 1) * pn, G.begin());  // G as scratch state
        for (int64_t c = 0; c < chunks; ++c) {
          std::copy(G.begin(), G.end(), starts.begin() + c * pn);
          for (int64_t t = c * Q; t < std::min(seq, (c + 1) * Q); ++t) {
            const float dtv = pdt[tok(t, h)], decay = std::exp(dtv * Ah);
            const float *xt = px + tok(t, h) * p, *Bt = pb + bc(t);
            for (int64_t i = 0; i < p; ++i)
              for (int64_t j = 0; j < n; ++j) G[i * n + j] = decay * G[i * n + j] + dtv * xt[i] * Bt[j];
          }
        }
        // Backward sweep, chunk by chunk from the end.
        std::fill(G.begin(), G.end(), 0.0f);
        double dA = 0.0, dD = 0.0;
        for (int64_t c = chunks - 1; c >= 0; --c) {
          const int64_t t0 = c * Q, len = std::min(Q, seq - t0);
          // states[l] = S after token t0 + l, rebuilt from the chunk's entering state.
          for (int64_t l = 0; l < len; ++l) {
            const int64_t t = t0 + l;
            const float dtv = pdt[tok(t, h)], decay = std::exp(dtv * Ah);
            const float *xt = px + tok(t, h) * p, *Bt = pb + bc(t);
            const float* prev = l > 0 ? &states[(l - 1) * pn] : &starts[c * pn];
            float* cur = &states[l * pn];
            for (int64_t i = 0; i < p; ++i)
              for (int64_t j = 0; j < n; ++j) cur[i * n + j] = decay * prev[i * n + j] + dtv * xt[i] * Bt[j];
          }
          for (int64_t l = len - 1; l >= 0; --l) {
            const int64_t t = t0 + l;
            const float dtv = pdt[tok(t, h)], decay = std::exp(dtv * Ah);
            const float *xt = px + tok(t, h) * p, *Bt = pb + bc(t), *Ct = pc + bc(t), *dyt = pdy + tok(t, h) * p;
            const float* S = &states[l * pn];
            const float* prev = l > 0 ? &states[(l - 1) * pn] : &starts[c * pn];
            float *dxt = pdx + tok(t, h) * p, *dBt = pdb + bc(t), *dCt = pdc + bc(t);
            // y_t = S_t C_t + D x_t
            for (int64_t i = 0; i < p; ++i) {
              dD += double(dyt[i]) * xt[i];
              dxt[i] += Dh * dyt[i];
              const float* Si = S + i * n;
              float* Gi = G.data() + i * n;
              for (int64_t j = 0; j < n; ++j) {
                Gi[j] += dyt[i] * Ct[j];
                dCt[j] += Si[j] * dyt[i];
              }
            }
            // S_t = a_t S_{t-1} + dt_t x_t B_tᵀ
            double ddt = 0.0, da = 0.0;
            for (int64_t i = 0; i < p; ++i) {
              const float* Gi = G.data() + i * n;
              const float* Pi = prev + i * n;
              float s = 0.0f;
              for (int64_t j = 0; j < n; ++j) {
                s += Gi[j] * Bt[j];
                da += double(Gi[j]) * Pi[j];
                dBt[j] += dtv * Gi[j] * xt[i];
              }
              gb[i] = s;
              dxt[i] += dtv * s;
              ddt += double(xt[i]) * s;
            }
            ddt += da * decay * Ah;
            dA += da * decay * dtv;
            pddt[tok(t, h)] = static_cast<float>(ddt);
            for (float& v : G) v *= decay;
          }
        }
        std::copy(G.begin(), G.end(), pds0 + (b * nh + h) * pn);
        dA_parts[b * nh + h] = dA;
        dD_parts[b * nh + h] = dD;
      }
    }
  });
  std::vector<float> dA(nh, 0.0f), dD(nh, 0.0f);
  for (int64_t h = 0; h < nh; ++h) {
    double sa = 0.0, sd = 0.0;
    for (int64_t b = 0; b < batch; ++b) {
      sa += dA_parts[b * nh + h];
      sd += dD_parts[b * nh + h];
    }
    dA[h] = static_cast<float>(sa);
    dD[h] = static_cast<float>(sd);
  }
  g.dA = Tensor::from_vector(dA, {nh});
  g.dD = Tensor::from_vector(dD, {nh});
  return g;
}

GatedNormGrads gated_rms_norm_backward(const Tensor& y_in, const Tensor& z_in, const Tensor& weight_in,
                                       int64_t group_size, float eps, const Tensor& dout_in) {
  NT_CHECK(y_in.shape() == z_in.shape() && dout_in.shape() == y_in.shape(),
           "gated_rms_norm backward: y {}, z {} and dout {} differ in shape", y_in.str(), z_in.str(), dout_in.str());
  const int64_t d = y_in.size(-1);
  NT_CHECK(weight_in.shape() == Shape({d}) && group_size >= 1 && d % group_size == 0,
           "gated_rms_norm backward: weight {} or group size {} does not fit width {}", weight_in.str(), group_size, d);
  Tensor y = f32(y_in), z = f32(z_in), w = f32(weight_in), dout = f32(dout_in);
  GatedNormGrads g{Tensor::empty(y.shape(), DType::F32), Tensor::empty(y.shape(), DType::F32), Tensor()};
  const float *py = y.data<float>(), *pz = z.data<float>(), *pw = w.data<float>(), *pdo = dout.data<float>();
  float *pdy = g.dy.data<float>(), *pdz = g.dz.data<float>();
  const int64_t rows = y.numel() / d;
  std::vector<double> dw = grad::sum_over_rows(rows, d, [&](int64_t begin, int64_t end, double* acc) {
    std::vector<float> gv(group_size);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g0 = 0; g0 < d; g0 += group_size) {
        const int64_t base = r * d + g0;
        double sq = 0.0, dot = 0.0;
        for (int64_t i = 0; i < group_size; ++i) {
          gv[i] = py[base + i] * silu(pz[base + i]);
          sq += double(gv[i]) * gv[i];
          dot += double(pw[g0 + i]) * pdo[base + i] * gv[i];
        }
        const double inv = 1.0 / std::sqrt(sq / group_size + eps);
        const double c = inv * inv * inv * dot / group_size;
        for (int64_t i = 0; i < group_size; ++i) {
          const float dg = static_cast<float>(inv * pw[g0 + i] * pdo[base + i] - c * gv[i]);
          acc[g0 + i] += double(pdo[base + i]) * gv[i] * inv;
          pdy[base + i] = dg * silu(pz[base + i]);
          pdz[base + i] = dg * py[base + i] * silu_grad(pz[base + i]);
        }
      }
    }
  });
  g.dweight = Tensor::from_vector(std::vector<float>(dw.begin(), dw.end()), {d});
  return g;
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

Tensor Mamba2Mixer::forward(const Tensor& x) const {
  NT_CHECK(x.dim() == 3, "Mamba2Mixer: input must be [batch, seq, hidden], got {}", x.str());
  const int64_t batch = x.size(0), seq = x.size(1), gn = n_groups * state_size;

  Tensor zxbcdt = ops::linear(x, in_proj_weight.value, in_proj_bias ? in_proj_bias->value : Tensor());
  Tensor z = zxbcdt.narrow(-1, 0, d_inner).contiguous();
  Tensor xBC = zxbcdt.narrow(-1, d_inner, conv_dim).contiguous();
  Tensor dt_raw = zxbcdt.narrow(-1, d_inner + conv_dim, num_heads).contiguous();

  xBC = ops::causal_conv1d_silu(xBC, conv1d_weight.value, conv1d_bias ? conv1d_bias->value : Tensor());

  mamba::SsdInputs in;
  in.x = xBC.narrow(-1, 0, d_inner).contiguous().view({batch, seq, num_heads, head_dim});
  in.B = xBC.narrow(-1, d_inner, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.C = xBC.narrow(-1, d_inner + gn, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.dt = mamba::discretize_dt(dt_raw, dt_bias.value, dt_min, dt_max);
  in.A = ops::scale(ops::exp(A_log.value), -1.0f);
  in.D = D.value;
  Tensor y = ops::ssd_scan(in, sequential_ssd ? 0 : chunk_size).y;

  y = ops::gated_rms_norm(y.view({batch, seq, d_inner}), z, norm_weight.value, d_inner / n_groups, eps);
  return ops::linear(y, out_proj_weight.value, out_proj_bias && adds_out_bias ? out_proj_bias->value : Tensor());
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
  Tensor zxbcdt = ops::linear(x, in_proj_weight.value, in_proj_bias ? in_proj_bias->value : Tensor());
  s->z = zxbcdt.narrow(-1, 0, d_inner).contiguous();
  s->xbc_pre = zxbcdt.narrow(-1, d_inner, conv_dim).contiguous();
  s->dt_raw = zxbcdt.narrow(-1, d_inner + conv_dim, num_heads).contiguous();
  Tensor xBC = ops::causal_conv1d_silu(s->xbc_pre, conv1d_weight.value, conv1d_bias ? conv1d_bias->value : Tensor());
  mamba::SsdInputs& in = s->ssd;
  in.x = xBC.narrow(-1, 0, d_inner).contiguous().view({batch, seq, num_heads, head_dim});
  in.B = xBC.narrow(-1, d_inner, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.C = xBC.narrow(-1, d_inner + gn, gn).contiguous().view({batch, seq, n_groups, state_size});
  in.dt = mamba::discretize_dt(s->dt_raw, dt_bias.value, dt_min, dt_max);
  in.A = ops::scale(ops::exp(A_log.value), -1.0f);
  in.D = D.value;
  s->y = ops::ssd_scan(in, sequential_ssd ? 0 : chunk_size).y.view({batch, seq, d_inner});
  s->normed = ops::gated_rms_norm(s->y, s->z, norm_weight.value, d_inner / n_groups, eps);
  Tensor out = ops::linear(s->normed, out_proj_weight.value,
                           out_proj_bias && adds_out_bias ? out_proj_bias->value : Tensor());
  saved = std::move(s);
  return out;
}

Tensor Mamba2Mixer::backward(const Tensor& dy, const Saved& saved_base, TrainContext&) {
  const auto& s = static_cast<const MambaSaved&>(saved_base);
  const int64_t batch = s.x.size(0), seq = s.x.size(1), gn = n_groups * state_size;
  Tensor dnormed = grad::linear_backward(s.normed, dy, out_proj_weight,
                                         out_proj_bias && adds_out_bias ? &*out_proj_bias : nullptr);
  mamba::GatedNormGrads gn_grads =
      mamba::gated_rms_norm_backward(s.y, s.z, norm_weight.value, d_inner / n_groups, eps, dnormed);
  norm_weight.accumulate_grad(gn_grads.dweight);

  mamba::SsdGrads ssd =
      mamba::ssd_backward(s.ssd, gn_grads.dy.view({batch, seq, num_heads, head_dim}), chunk_size);
  D.accumulate_grad(ssd.dD);
  A_log.accumulate_grad(ops::mul(ssd.dA, s.ssd.A));  // A = −exp(A_log): dA/dA_log = A
  mamba::DtGrads dt = mamba::discretize_dt_backward(s.dt_raw, dt_bias.value, dt_min, dt_max, ssd.ddt);
  dt_bias.accumulate_grad(dt.d_bias);

  Tensor dxbc = ops::cat({ssd.dx.view({batch, seq, d_inner}), ssd.dB.view({batch, seq, gn}),
                          ssd.dC.view({batch, seq, gn})},
                         -1);
  mamba::ConvGrads conv = mamba::causal_conv1d_silu_backward(
      s.xbc_pre, conv1d_weight.value, conv1d_bias ? conv1d_bias->value : Tensor(), dxbc);
  conv1d_weight.accumulate_grad(conv.dweight);
  if (conv1d_bias) conv1d_bias->accumulate_grad(conv.dbias);

  Tensor dzxbcdt = ops::cat({gn_grads.dz, conv.dx, dt.d_raw}, -1);
  return grad::linear_backward(s.x, dzxbcdt, in_proj_weight, in_proj_bias ? &*in_proj_bias : nullptr);
}

}  // namespace nemotron
