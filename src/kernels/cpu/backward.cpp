// CPU reference of the training ops (kernels/ops.h, "training: backward passes and fused steps"):
// the hand-derived gradients of the forward ops, fp32 arithmetic with double accumulators where a
// sum runs over many rows, and results that do not depend on the number of threads. Arguments are
// checked by ops.cpp.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cpu {

namespace {

Tensor f32(const Tensor& t) { return as_f32(t); }

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

float silu(float v) { return v / (1.0f + std::exp(-v)); }

// d silu(v) / dv = σ(v)·(1 + v·(1 − σ(v)))
float silu_grad(float v) {
  const float sg = sigmoid(v);
  return sg * (1.0f + v * (1.0f - sg));
}

// softplus as mamba_ssm and torch compute it: linear above 20.
float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }

Tensor vector_tensor(const std::vector<double>& v, size_t begin, size_t end, Shape shape) {
  return Tensor::from_vector(std::vector<float>(v.begin() + begin, v.begin() + end), std::move(shape));
}

}  // namespace

std::vector<double> sum_over_rows(int64_t rows, int64_t width,
                                  const std::function<void(int64_t begin, int64_t end, double* acc)>& add) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks * width, 0.0);
  parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) add(b * kBlock, std::min(rows, (b + 1) * kBlock), &partial[b * width]);
  });
  std::vector<double> total(width, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < width; ++i) total[i] += partial[b * width + i];
  return total;
}

// ---------------------------------------------------------------- GEMM accumulation

void matmul_add_(Tensor& c, const Tensor& a_in, const Tensor& b_in, bool trans_a, bool trans_b, float alpha) {
  Tensor a = f32(a_in), b = f32(b_in);
  const int64_t M = c.size(0), N = c.size(1), K = trans_a ? a.size(0) : a.size(1);
  if (M == 0 || N == 0 || K == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, a.data<float>(),
              static_cast<int>(trans_a ? M : K), b.data<float>(), static_cast<int>(trans_b ? K : N), 1.0f,
              c.data<float>(), static_cast<int>(N));
}

// ---------------------------------------------------------------- norms and activations

ops::RmsNormGrads rms_norm_backward(const Tensor& x_in, const Tensor& w_in, float eps, const Tensor& dy_in) {
  const int64_t d = x_in.size(-1);
  Tensor x = f32(x_in), w = f32(w_in), dy = f32(dy_in);
  const int64_t rows = d ? x.numel() / d : 0;
  Tensor dx = Tensor::empty(x.shape(), DType::F32);
  const float *px = x.data<float>(), *pw = w.data<float>(), *pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  std::vector<double> dw_sum = sum_over_rows(rows, d, [&](int64_t begin, int64_t end, double* dw) {
    for (int64_t r = begin; r < end; ++r) {
      const float *xr = px + r * d, *gr = pdy + r * d;
      double ss = 0.0, dot = 0.0;
      for (int64_t i = 0; i < d; ++i) {
        ss += double(xr[i]) * xr[i];
        dot += double(pw[i]) * gr[i] * xr[i];
      }
      const double inv = 1.0 / std::sqrt(ss / d + eps);
      const double c = inv * inv * inv * dot / d;
      for (int64_t i = 0; i < d; ++i) {
        pdx[r * d + i] = static_cast<float>(inv * pw[i] * gr[i] - c * xr[i]);
        dw[i] += double(gr[i]) * xr[i] * inv;
      }
    }
  });
  return {dx, vector_tensor(dw_sum, 0, d, {d})};
}

Tensor relu2_backward(const Tensor& x_in, const Tensor& dy_in) {
  Tensor x = f32(x_in), dy = f32(dy_in);
  Tensor dx = Tensor::empty(x.shape(), DType::F32);
  const float *px = x.data<float>(), *pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  parallel_for(x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pdx[i] = px[i] > 0.0f ? 2.0f * px[i] * pdy[i] : 0.0f;
  });
  return dx;
}

// ---------------------------------------------------------------- Mamba-2 pieces

ops::ConvGrads causal_conv1d_silu_backward(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in,
                                           const Tensor& dout_in) {
  const int64_t batch = x_in.size(0), seq = x_in.size(1), ch = x_in.size(2);
  Tensor w = f32(weight_in.dim() == 3 ? weight_in.reshape({weight_in.size(0), weight_in.size(2)}) : weight_in);
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
  ops::ConvGrads g;
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
  std::vector<double> sums = sum_over_rows(batch * seq, ch * (k + 1), [&](int64_t begin, int64_t end, double* acc) {
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
  g.dweight = vector_tensor(sums, 0, ch * k, weight_in.shape());
  if (bias_in.defined()) g.dbias = vector_tensor(sums, ch * k, sums.size(), {ch});
  return g;
}

Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi) {
  Tensor dt = f32(dt_raw).clone(), bias = f32(dt_bias);
  const int64_t nh = dt.size(2);
  float* p = dt.data<float>();
  const float* pb = bias.data<float>();
  for (int64_t i = 0; i < dt.numel(); ++i) {
    double v = softplus(p[i] + pb[i % nh]);
    p[i] = static_cast<float>(std::min(std::max(v, lo), hi));
  }
  return dt;
}

ops::DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi,
                                    const Tensor& ddt_in) {
  Tensor raw = f32(dt_raw), bias = f32(dt_bias), ddt = f32(ddt_in);
  const int64_t nh = raw.size(2), rows = nh ? raw.numel() / nh : 0;
  ops::DtGrads g{Tensor::empty(raw.shape(), DType::F32), Tensor()};
  const float *pr = raw.data<float>(), *pb = bias.data<float>(), *pg = ddt.data<float>();
  float* pd = g.d_raw.data<float>();
  std::vector<double> db = sum_over_rows(rows, nh, [&](int64_t begin, int64_t end, double* acc) {
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
  g.d_bias = vector_tensor(db, 0, nh, {nh});
  return g;
}

// The recurrence run backwards. The states S_{t−1} are recomputed, not stored: a forward sweep keeps
// the state at every `chunk_size`-th token, then each chunk's states are rebuilt from its checkpoint
// while the backward sweep passes through it (memory (T/Q + Q)·P·N per head).
ops::SsdGrads ssd_scan_backward(const ops::SsdInputs& in, const Tensor& dy_in, int64_t chunk_size) {
  Tensor x = f32(in.x), dt = f32(in.dt), A = f32(in.A), B = f32(in.B), C = f32(in.C), dy = f32(dy_in);
  Tensor D = in.D.defined() ? f32(in.D) : Tensor::zeros(A.shape(), DType::F32);
  const int64_t batch = x.size(0), seq = x.size(1), nh = x.size(2), p = x.size(3), groups = B.size(2), n = B.size(3);
  const int64_t heads_per_group = nh / groups, pn = p * n, Q = chunk_size, chunks = (seq + Q - 1) / Q;
  Tensor init = in.initial_state.defined() ? f32(in.initial_state) : Tensor::zeros({batch, nh, p, n}, DType::F32);

  ops::SsdGrads g;
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

ops::GatedNormGrads gated_rms_norm_backward(const Tensor& y_in, const Tensor& z_in, const Tensor& weight_in,
                                            int64_t group_size, float eps, const Tensor& dout_in) {
  const int64_t d = y_in.size(-1);
  Tensor y = f32(y_in), z = f32(z_in), w = f32(weight_in), dout = f32(dout_in);
  ops::GatedNormGrads g{Tensor::empty(y.shape(), DType::F32), Tensor::empty(y.shape(), DType::F32), Tensor()};
  const float *py = y.data<float>(), *pz = z.data<float>(), *pw = w.data<float>(), *pdo = dout.data<float>();
  float *pdy = g.dy.data<float>(), *pdz = g.dz.data<float>();
  const int64_t rows = d ? y.numel() / d : 0;
  std::vector<double> dw = sum_over_rows(rows, d, [&](int64_t begin, int64_t end, double* acc) {
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
  g.dweight = vector_tensor(dw, 0, d, {d});
  return g;
}

// ---------------------------------------------------------------- attention

ops::AttentionGrads causal_attention_backward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                              const ops::AttentionOutput& fwd, const Tensor& dout_in,
                                              int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                                              float scale) {
  Tensor q = f32(q_in), k = f32(k_in), v = f32(v_in), o = f32(fwd.out), dout = f32(dout_in), lse = f32(fwd.lse);
  const int64_t batch = q.size(0), seq = q.size(1), q_per_kv = num_heads / num_kv_heads;
  const int64_t q_row = num_heads * head_dim, kv_row = num_kv_heads * head_dim;
  ops::AttentionGrads g{Tensor::zeros(q.shape(), DType::F32), Tensor::zeros(k.shape(), DType::F32),
                        Tensor::zeros(v.shape(), DType::F32)};
  const float *pq = q.data<float>(), *pk = k.data<float>(), *pv = v.data<float>(), *po = o.data<float>(),
              *pdo = dout.data<float>(), *plse = lse.data<float>();
  float *pdq = g.dq.data<float>(), *pdk = g.dk.data<float>(), *pdv = g.dv.data<float>();
  // One task per (batch row, KV head): it owns that KV head's dk, dv and its query heads' dq.
  parallel_for(batch * num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / num_kv_heads, kvh = bk % num_kv_heads;
      const float* kb = pk + b * seq * kv_row + kvh * head_dim;
      const float* vb = pv + b * seq * kv_row + kvh * head_dim;
      float* dkb = pdk + b * seq * kv_row + kvh * head_dim;
      float* dvb = pdv + b * seq * kv_row + kvh * head_dim;
      for (int64_t h = kvh * q_per_kv; h < (kvh + 1) * q_per_kv; ++h) {
        const int64_t off = b * seq * q_row + h * head_dim;
        for (int64_t i = 0; i < seq; ++i) {
          const float *qi = pq + off + i * q_row, *oi = po + off + i * q_row, *doi = pdo + off + i * q_row;
          float* dqi = pdq + off + i * q_row;
          const float lse_i = plse[(b * num_heads + h) * seq + i];
          float delta = 0.0f;  // dO_i · O_i = Σ_j p_ij (dO_i · v_j)
          for (int64_t d = 0; d < head_dim; ++d) delta += doi[d] * oi[d];
          for (int64_t j = 0; j <= i; ++j) {
            const float *kj = kb + j * kv_row, *vj = vb + j * kv_row;
            float s = 0.0f, dp = 0.0f;
            for (int64_t d = 0; d < head_dim; ++d) {
              s += qi[d] * kj[d];
              dp += doi[d] * vj[d];
            }
            const float p = std::exp(s * scale - lse_i);
            const float ds = p * (dp - delta) * scale;
            float *dkj = dkb + j * kv_row, *dvj = dvb + j * kv_row;
            for (int64_t d = 0; d < head_dim; ++d) {
              dqi[d] += ds * kj[d];
              dkj[d] += ds * qi[d];
              dvj[d] += p * doi[d];
            }
          }
        }
      }
    }
  });
  return g;
}

// ---------------------------------------------------------------- loss and norms

Tensor cross_entropy_(Tensor& logits_io, const Tensor& labels_in, const Tensor& weights_in, float grad_scale) {
  const int64_t n = logits_io.size(0), vocab = logits_io.size(1);
  const std::vector<int64_t> labels = labels_in.to_i64_vector();
  Tensor weights = f32(weights_in);
  const float* pw = weights.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    NT_CHECK(pw[i] == 0.0f || (labels[i] >= 0 && labels[i] < vocab),
             "cross_entropy: label {} at row {} is outside the vocabulary [0, {})", labels[i], i, vocab);
  }
  // F32 logits are worked on in place; BF16 ones through an F32 copy written back at the end.
  Tensor logits = logits_io.dtype() == DType::F32 ? logits_io : f32(logits_io);
  float* pl = logits.data<float>();
  std::vector<float> row_loss(n, 0.0f);
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* l = pl + i * vocab;
      if (pw[i] == 0.0f) {
        if (grad_scale != 0.0f) std::fill(l, l + vocab, 0.0f);
        continue;
      }
      float mx = -INFINITY;
      for (int64_t v = 0; v < vocab; ++v) mx = std::max(mx, l[v]);
      const float label_logit = l[labels[i]];
      // Σ exp(l − max) in double; with a gradient to write, the row becomes exp(l − max) on the way.
      double z = 0.0;
      if (grad_scale == 0.0f) {
        for (int64_t v = 0; v < vocab; ++v) z += std::exp(l[v] - mx);
        row_loss[i] = static_cast<float>(pw[i] * (mx + std::log(z) - label_logit));
        continue;
      }
      for (int64_t v = 0; v < vocab; ++v) z += l[v] = std::exp(l[v] - mx);
      row_loss[i] = static_cast<float>(pw[i] * (mx + std::log(z) - label_logit));
      // d logits = scale·weight·(softmax − onehot)
      const double g = double(grad_scale) * pw[i];
      const float g_over_z = static_cast<float>(g / z);
      for (int64_t v = 0; v < vocab; ++v) l[v] *= g_over_z;
      l[labels[i]] -= static_cast<float>(g);
    }
  });
  if (grad_scale != 0.0f && logits.storage() != logits_io.storage()) logits_io.copy_(logits);
  return Tensor::from_vector(row_loss, {n});
}

double sum_of_squares(const Tensor& x_in) {
  Tensor x = f32(x_in);
  const float* p = x.data<float>();
  // Fixed blocks whose partial sums are added in order: the same bits for any number of threads.
  constexpr int64_t kBlock = 1 << 16;
  const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks, 0.0);
  parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b)
      for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) partial[b] += double(p[i]) * p[i];
  });
  double total = 0.0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace nemotron::cpu
