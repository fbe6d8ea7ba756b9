// CPU reference of the decoding ops (kernels/ops.h, section "decoding"): attention over a row's KV
// cache, the causal conv continuing from a row's window, and the SSM recurrence continuing from a
// row's state (spec/model.md §3.6–3.7). Arguments are checked by kernels/decode_ops.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cpu {

namespace {

float silu(float v) { return v / (1.0f + std::exp(-v)); }

}  // namespace

void copy_batch_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
  for (size_t i = 0; i < dst.size(); ++i) {
    Tensor d = dst[i];  // a handle on the same storage
    d.copy_(src[i]);
  }
}

Tensor cached_attention(const Tensor& q_in, const std::vector<Tensor>& k_cache, const std::vector<Tensor>& v_cache,
                        const std::vector<int64_t>& lengths, int64_t num_heads, int64_t num_kv_heads,
                        int64_t head_dim, float scale) {
  const Tensor q = as_f32(q_in);
  const int64_t batch = q.size(0), seq = q.size(1), hd = head_dim, q_row = num_heads * hd;
  const int64_t kv_row = num_kv_heads * hd, q_per_kv = num_heads / num_kv_heads;
  Tensor out = Tensor::zeros({batch, seq, q_row}, DType::F32);
  const float* pq = q.data<float>();
  float* po = out.data<float>();
  parallel_for(batch * num_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / num_heads, h = bh % num_heads, kv_offset = (h / q_per_kv) * hd;
      const float *keys = k_cache[b].data<float>() + kv_offset, *values = v_cache[b].data<float>() + kv_offset;
      const int64_t past = lengths[b] - seq;
      p.resize(static_cast<size_t>(lengths[b]));
      for (int64_t i = 0; i < seq; ++i) {
        // Scores against positions 0 .. past + i, softmax, weighted sum of the values.
        const float* qi = pq + (b * seq + i) * q_row + h * hd;
        const int64_t visible = past + i + 1;
        float mx = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          const float* kj = keys + j * kv_row;
          float s = 0.0f;
          for (int64_t d = 0; d < hd; ++d) s += qi[d] * kj[d];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        float total = 0.0f;
        for (int64_t j = 0; j < visible; ++j) total += p[j] = std::exp(p[j] - mx);
        float* o = po + (b * seq + i) * q_row + h * hd;
        for (int64_t j = 0; j < visible; ++j) {
          const float w = p[j] / total;
          const float* vj = values + j * kv_row;
          for (int64_t d = 0; d < hd; ++d) o[d] += w * vj[d];
        }
      }
    }
  });
  return out;
}

Tensor conv_step_(const Tensor& x_in, const std::vector<Tensor>& states, const Tensor& weight, const Tensor& bias_in,
                  const std::vector<Tensor>& windows) {
  const Tensor x = as_f32(x_in);
  const int64_t batch = x.size(0), seq = x.size(1), ch = x.size(2), k = weight.size(-1);
  const Tensor w = as_f32(weight.reshape({ch, k})), bias = bias_in.defined() ? as_f32(bias_in) : Tensor();
  const float *pw = w.data<float>(), *pbias = bias.defined() ? bias.data<float>() : nullptr;
  Tensor out = Tensor::empty({batch, seq, ch}, DType::F32);
  parallel_for(batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> win;
    for (int64_t b = begin; b < end; ++b) {
      // The row's window [state ‖ new inputs], [K-1+T, C].
      win.resize(static_cast<size_t>((k - 1 + seq) * ch));
      float* state = states[b].data<float>();
      std::memcpy(win.data(), state, sizeof(float) * (k - 1) * ch);
      std::memcpy(win.data() + (k - 1) * ch, x.data<float>() + b * seq * ch, sizeof(float) * seq * ch);
      float* o = out.data<float>() + b * seq * ch;
      for (int64_t t = 0; t < seq; ++t) {
        for (int64_t c = 0; c < ch; ++c) {
          float acc = pbias ? pbias[c] : 0.0f;
          for (int64_t j = 0; j < k; ++j) acc += pw[c * k + j] * win[(t + j) * ch + c];
          o[t * ch + c] = silu(acc);
        }
      }
      std::memcpy(state, win.data() + seq * ch, sizeof(float) * (k - 1) * ch);
      if (!windows.empty()) std::memcpy(windows[b].data<float>(), win.data(), sizeof(float) * win.size());
    }
  });
  return out;
}

Tensor ssm_step_(const ops::SsdInputs& in, const std::vector<Tensor>& states, const std::vector<Tensor>& checkpoints) {
  const Tensor x = as_f32(in.x), dt = as_f32(in.dt), A = as_f32(in.A), B = as_f32(in.B), C = as_f32(in.C);
  const Tensor D = in.D.defined() ? as_f32(in.D) : Tensor::zeros(A.shape(), DType::F32);
  const int64_t batch = x.size(0), seq = x.size(1), nh = x.size(2), P = x.size(3);
  const int64_t groups = B.size(2), N = B.size(3), heads_per_group = nh / groups;
  const float *px = x.data<float>(), *pdt = dt.data<float>(), *pa = A.data<float>(), *pb = B.data<float>(),
              *pc = C.data<float>(), *pd = D.data<float>();
  Tensor y = Tensor::empty({batch, seq, nh, P}, DType::F32);
  float* py = y.data<float>();
  // S_t = exp(dt_t·A)·S_{t−1} + dt_t·outer(x_t, B_t);  y_t = S_t·C_t + D·x_t  (spec §3.6), in place.
  parallel_for(batch * nh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / nh, h = bh % nh, g = h / heads_per_group;
      float* S = states[b].data<float>() + h * P * N;
      for (int64_t t = 0; t < seq; ++t) {
        const int64_t tok = b * seq + t;
        const float *xh = px + (tok * nh + h) * P, *Bg = pb + (tok * groups + g) * N, *Cg = pc + (tok * groups + g) * N;
        const float step = pdt[tok * nh + h], decay = std::exp(step * pa[h]);
        float* yt = py + (tok * nh + h) * P;
        for (int64_t i = 0; i < P; ++i) {
          float* s = S + i * N;
          float acc = 0.0f;
          for (int64_t j = 0; j < N; ++j) {
            s[j] = decay * s[j] + step * xh[i] * Bg[j];
            acc += s[j] * Cg[j];
          }
          yt[i] = acc + pd[h] * xh[i];
        }
        if (!checkpoints.empty())
          std::memcpy(checkpoints[b].data<float>() + (t * nh + h) * P * N, S, sizeof(float) * P * N);
      }
    }
  });
  return y;
}

}  // namespace nemotron::cpu
