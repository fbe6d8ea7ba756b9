// CPU reference of the Mamba-2 pieces (spec/model.md §3.4–3.6): the depthwise causal conv + SiLU,
// the SSD scan (sequential definition and chunked form) and the gated RMSNorm.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cpu {

using ops::SsdInputs;
using ops::SsdOutputs;

namespace {

Tensor f32(const Tensor& t) { return as_f32(t); }

float silu(float v) { return v / (1.0f + std::exp(-v)); }

// Raw views of the SSD inputs of one batch row and one group of heads (the heads that share B and C).
struct GroupView {
  const float *x, *dt, *B, *C, *A, *D;  // x, dt, A, D at the group's first head; B, C at the group
  int64_t x_step, dt_step, bc_step;     // elements between consecutive tokens
  int64_t heads, p, n;                  // heads in the group, head dim, state size
  const float* x_at(int64_t t, int64_t h) const { return x + t * x_step + h * p; }
  float dt_at(int64_t t, int64_t h) const { return dt[t * dt_step + h]; }
  const float* B_at(int64_t t) const { return B + t * bc_step; }
  const float* C_at(int64_t t) const { return C + t * bc_step; }
};

// Runs `scan(view, state, y, seq, y_step)` for every (batch row, group) in parallel. state
// [heads, P, N] holds the group's initial state on entry and its final state on return; y points at
// the output of the group's first head at token 0, consecutive tokens y_step apart.
template <typename Scan>
SsdOutputs run_per_group(const SsdInputs& in, Scan scan) {
  ops::check_ssd_inputs(in);
  Tensor x = f32(in.x), dt = f32(in.dt), A = f32(in.A), B = f32(in.B), C = f32(in.C);
  Tensor D = in.D.defined() ? f32(in.D) : Tensor::zeros(A.shape(), DType::F32);
  int64_t batch = x.size(0), seq = x.size(1), nh = x.size(2), p = x.size(3), groups = B.size(2), n = B.size(3);
  int64_t heads_per_group = nh / groups;
  Tensor y = Tensor::zeros({batch, seq, nh, p}, DType::F32);
  Tensor state = in.initial_state.defined() ? f32(in.initial_state).clone() : Tensor::zeros({batch, nh, p, n}, DType::F32);
  const float *px = x.data<float>(), *pdt = dt.data<float>(), *pa = A.data<float>(), *pb = B.data<float>(),
              *pc = C.data<float>(), *pd = D.data<float>();
  float *py = y.data<float>(), *ps = state.data<float>();
  parallel_for(batch * groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      int64_t b = bg / groups, g = bg % groups, h0 = g * heads_per_group;
      GroupView v{px + (b * seq * nh + h0) * p,
                  pdt + b * seq * nh + h0,
                  pb + (b * seq * groups + g) * n,
                  pc + (b * seq * groups + g) * n,
                  pa + h0,
                  pd + h0,
                  nh * p,
                  nh,
                  groups * n,
                  heads_per_group,
                  p,
                  n};
      scan(v, ps + (b * nh + h0) * p * n, py + (b * seq * nh + h0) * p, seq, nh * p);
    }
  });
  return {y, state};
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// y += a * x over n contiguous elements (the inner loops below are written to vectorise).
void axpy(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

Tensor causal_conv1d_silu(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
  NT_CHECK(x_in.dim() == 3, "causal_conv1d: x must be [batch, seq, channels], got {}", x_in.str());
  int64_t batch = x_in.size(0), seq = x_in.size(1), ch = x_in.size(2);
  Tensor w = f32(weight_in.dim() == 3 ? weight_in.reshape({weight_in.size(0), weight_in.size(2)}) : weight_in);
  NT_CHECK(w.dim() == 2 && w.size(0) == ch, "causal_conv1d: weight must be [{}, 1, K], got {}", ch, weight_in.str());
  NT_CHECK(!bias_in.defined() || bias_in.shape() == Shape({ch}), "causal_conv1d: bias must be [{}], got {}", ch,
           bias_in.str());
  int64_t k = w.size(1);
  Tensor x = f32(x_in), bias = bias_in.defined() ? f32(bias_in) : Tensor();
  Tensor out = Tensor::empty({batch, seq, ch}, DType::F32);
  const float *px = x.data<float>(), *pw = w.data<float>(), *pbias = bias.defined() ? bias.data<float>() : nullptr;
  float* po = out.data<float>();
  parallel_for(batch * seq, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      int64_t b = bt / seq, t = bt % seq;
      for (int64_t c = 0; c < ch; ++c) {
        float acc = pbias ? pbias[c] : 0.0f;
        for (int64_t j = 0; j < k; ++j) {
          int64_t src = t - (k - 1) + j;  // tap j sees token t-(K-1)+j; earlier than 0 is zero padding
          if (src >= 0) acc += pw[c * k + j] * px[(b * seq + src) * ch + c];
        }
        po[bt * ch + c] = silu(acc);
      }
    }
  });
  return out;
}

SsdOutputs ssd_sequential(const SsdInputs& in) {
  return run_per_group(in, [](const GroupView& v, float* state, float* y, int64_t seq, int64_t y_step) {
    for (int64_t h = 0; h < v.heads; ++h) {
      float* S = state + h * v.p * v.n;  // [P, N]
      for (int64_t t = 0; t < seq; ++t) {
        float dt = v.dt_at(t, h), decay = std::exp(dt * v.A[h]);
        const float *x = v.x_at(t, h), *B = v.B_at(t), *C = v.C_at(t);
        float* yt = y + t * y_step + h * v.p;
        for (int64_t i = 0; i < v.p; ++i) {
          float* s = S + i * v.n;
          for (int64_t j = 0; j < v.n; ++j) s[j] = decay * s[j] + dt * x[i] * B[j];
          yt[i] = dot(s, C, v.n) + v.D[h] * x[i];
        }
      }
    }
  });
}

SsdOutputs ssd_chunked(const SsdInputs& in, int64_t chunk_size) {
  NT_CHECK(chunk_size >= 1, "ssd: chunk_size must be at least 1, got {}", chunk_size);
  return run_per_group(in, [chunk_size](const GroupView& v, float* state, float* y, int64_t seq, int64_t y_step) {
    const int64_t Q = chunk_size, p = v.p, n = v.n;
    std::vector<float> cum(Q), cb(Q * Q);
    // The state kept transposed, [heads][N][P], so that every update runs along P.
    std::vector<float> st(v.heads * n * p);
    for (int64_t h = 0; h < v.heads; ++h)
      for (int64_t i = 0; i < p; ++i)
        for (int64_t j = 0; j < n; ++j) st[(h * n + j) * p + i] = state[(h * p + i) * n + j];

    // Positions past the end of the sequence contribute nothing (dt·A = 0, x·dt = 0), so the last
    // chunk is simply shorter instead of padded.
    for (int64_t t0 = 0; t0 < seq; t0 += Q) {
      const int64_t len = std::min(Q, seq - t0);
      // C_l·B_s, shared by the group's heads.
      for (int64_t l = 0; l < len; ++l)
        for (int64_t s = 0; s <= l; ++s) cb[l * Q + s] = dot(v.C_at(t0 + l), v.B_at(t0 + s), n);
      for (int64_t h = 0; h < v.heads; ++h) {
        float* S = st.data() + h * n * p;
        float running = 0.0f;
        for (int64_t l = 0; l < len; ++l) cum[l] = running += v.dt_at(t0 + l, h) * v.A[h];  // inclusive cumsum
        for (int64_t l = 0; l < len; ++l) {
          float* yt = y + (t0 + l) * y_step + h * p;
          // Intra-chunk: sum_{s<=l} (C_l·B_s) exp(cum_l - cum_s) dt_s x_s.
          for (int64_t s = 0; s <= l; ++s)
            axpy(yt, cb[l * Q + s] * std::exp(cum[l] - cum[s]) * v.dt_at(t0 + s, h), v.x_at(t0 + s, h), p);
          // The state entering the chunk, decayed to position l, read out by C_l; then the D skip.
          const float decay_in = std::exp(cum[l]);
          const float* C = v.C_at(t0 + l);
          for (int64_t j = 0; j < n; ++j) axpy(yt, decay_in * C[j], S + j * p, p);
          axpy(yt, v.D[h], v.x_at(t0 + l, h), p);
        }
        // The state leaving the chunk: S = exp(cum_last) S + sum_s exp(cum_last - cum_s) dt_s outer(x_s, B_s).
        const float decay_all = std::exp(cum[len - 1]);
        for (int64_t i = 0; i < n * p; ++i) S[i] *= decay_all;
        for (int64_t s = 0; s < len; ++s) {
          const float w = std::exp(cum[len - 1] - cum[s]) * v.dt_at(t0 + s, h);
          const float *xs = v.x_at(t0 + s, h), *B = v.B_at(t0 + s);
          for (int64_t j = 0; j < n; ++j) axpy(S + j * p, w * B[j], xs, p);
        }
      }
    }
    for (int64_t h = 0; h < v.heads; ++h)
      for (int64_t i = 0; i < p; ++i)
        for (int64_t j = 0; j < n; ++j) state[(h * p + i) * n + j] = st[(h * n + j) * p + i];
  });
}

Tensor gated_rms_norm(const Tensor& y_in, const Tensor& z_in, const Tensor& weight_in, int64_t group_size, float eps) {
  NT_CHECK(y_in.shape() == z_in.shape(), "gated_rms_norm: y {} and gate z {} differ in shape", y_in.str(), z_in.str());
  int64_t d = y_in.size(-1);
  NT_CHECK(weight_in.shape() == Shape({d}), "gated_rms_norm: weight must be [{}], got {}", d, weight_in.str());
  NT_CHECK(group_size >= 1 && d % group_size == 0, "gated_rms_norm: width {} is not a multiple of the group size {}",
           d, group_size);
  Tensor y = f32(y_in), z = f32(z_in), w = f32(weight_in);
  Tensor out = Tensor::empty(y.shape(), DType::F32);
  const float *py = y.data<float>(), *pz = z.data<float>(), *pw = w.data<float>();
  float* po = out.data<float>();
  int64_t rows = y.numel() / d;
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> g(group_size);
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t g0 = 0; g0 < d; g0 += group_size) {
        int64_t base = r * d + g0;
        float sq = 0.0f;
        for (int64_t i = 0; i < group_size; ++i) {
          g[i] = py[base + i] * silu(pz[base + i]);
          sq += g[i] * g[i];
        }
        float inv = 1.0f / std::sqrt(sq / static_cast<float>(group_size) + eps);
        for (int64_t i = 0; i < group_size; ++i) po[base + i] = pw[g0 + i] * (g[i] * inv);
      }
    }
  });
  return out;
}

}  // namespace nemotron::cpu
