#include "model/decode_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "model/attention.h"
#include "model/mamba2.h"

namespace nemotron::decode {

namespace {

float silu(float v) { return v / (1.0f + std::exp(-v)); }

std::vector<float> f32_values(const Tensor& t) { return t.to(DType::F32).contiguous().to_f32_vector(); }

// Attention of T new positions per row against everything the row's cache holds (spec §3.7): the
// new keys and values are appended first, then query i of the step sees positions 0 .. past + i.
Tensor attention_step(const Attention& a, const Tensor& x, std::span<LayerCache* const> caches) {
  const int64_t batch = x.size(0), seq = x.size(1), hd = a.head_dim, nq = a.num_heads, nkv = a.num_kv_heads;
  const int64_t q_row = nq * hd, kv_row = nkv * hd, q_per_kv = nq / nkv;
  Tensor q = ops::linear(x, a.q_proj.value).contiguous();
  Tensor k = ops::linear(x, a.k_proj.value).contiguous();
  Tensor v = ops::linear(x, a.v_proj.value).contiguous();
  for (int64_t b = 0; b < batch; ++b) {
    caches[b]->attention.append(k.data<float>() + b * seq * kv_row, v.data<float>() + b * seq * kv_row, seq, kv_row);
  }
  Tensor out = Tensor::zeros({batch, seq, q_row}, DType::F32);
  const float* pq = q.data<float>();
  float* po = out.data<float>();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  parallel_for(batch * nq, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / nq, h = bh % nq, kv_offset = (h / q_per_kv) * hd;
      const AttentionCache& cache = caches[b]->attention;
      const int64_t past = cache.length - seq;
      p.resize(cache.length);
      for (int64_t i = 0; i < seq; ++i) {
        const float* qi = pq + (b * seq + i) * q_row + h * hd;
        const int64_t visible = past + i + 1;
        float mx = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          const float* kj = cache.key_row(j) + kv_offset;
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
          const float* vj = cache.value_row(j) + kv_offset;
          for (int64_t d = 0; d < hd; ++d) o[d] += w * vj[d];
        }
      }
    }
  });
  return ops::linear(out, a.o_proj.value);
}

// The Mamba-2 mixer on T new positions per row, continuing from the rows' conv and SSM states
// (spec §3.4 for the projections and the gated norm, §3.6 for the state update).
Tensor mamba_step(const Mamba2Mixer& m, const Tensor& x, std::span<LayerCache* const> caches, bool keep_checkpoints) {
  const int64_t batch = x.size(0), seq = x.size(1);
  const int64_t nh = m.num_heads, P = m.head_dim, G = m.n_groups, N = m.state_size, C = m.conv_dim;
  const int64_t K = m.conv_kernel, inner = m.d_inner, gn = G * N, heads_per_group = nh / G;

  Tensor zxbcdt = ops::linear(x, m.in_proj_weight.value, m.in_proj_bias ? m.in_proj_bias->value : Tensor());
  Tensor z = zxbcdt.narrow(-1, 0, inner).contiguous();
  Tensor xbc_raw = zxbcdt.narrow(-1, inner, C).contiguous();
  Tensor dt = mamba::discretize_dt(zxbcdt.narrow(-1, inner + C, nh).contiguous(), m.dt_bias.value, m.dt_min, m.dt_max);

  // Depthwise causal conv over [window before the step | the step's inputs], then SiLU.
  const std::vector<float> w = f32_values(m.conv1d_weight.value.reshape({C, K}));
  const std::vector<float> conv_bias = m.conv1d_bias ? f32_values(m.conv1d_bias->value) : std::vector<float>(C, 0.0f);
  Tensor xbc = Tensor::empty({batch, seq, C}, DType::F32);
  parallel_for(batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      MambaCache& cache = caches[b]->mamba;
      Tensor window = Tensor::empty({K - 1 + seq, C}, DType::F32);
      float* win = window.data<float>();
      std::memcpy(win, cache.conv.data<float>(), sizeof(float) * (K - 1) * C);
      std::memcpy(win + (K - 1) * C, xbc_raw.data<float>() + b * seq * C, sizeof(float) * seq * C);
      float* out = xbc.data<float>() + b * seq * C;
      for (int64_t t = 0; t < seq; ++t) {
        for (int64_t c = 0; c < C; ++c) {
          float acc = conv_bias[c];
          for (int64_t j = 0; j < K; ++j) acc += w[c * K + j] * win[(t + j) * C + c];
          out[t * C + c] = silu(acc);
        }
      }
      std::memcpy(cache.conv.data<float>(), win + seq * C, sizeof(float) * (K - 1) * C);
      if (keep_checkpoints) cache.xbc_window = window;
    }
  });

  const std::vector<float> A = f32_values(ops::scale(ops::exp(m.A_log.value), -1.0f)), D = f32_values(m.D.value);
  Tensor y;
  if (seq > 1 && !keep_checkpoints) {
    // Prefill: the chunked (or sequential) scan of the full forward, started from the cached states.
    mamba::SsdInputs in;
    in.x = xbc.narrow(-1, 0, inner).contiguous().view({batch, seq, nh, P});
    in.B = xbc.narrow(-1, inner, gn).contiguous().view({batch, seq, G, N});
    in.C = xbc.narrow(-1, inner + gn, gn).contiguous().view({batch, seq, G, N});
    in.dt = dt;
    in.A = Tensor::from_vector(A, {nh});
    in.D = Tensor::from_vector(D, {nh});
    in.initial_state = Tensor::empty({batch, nh, P, N}, DType::F32);
    for (int64_t b = 0; b < batch; ++b) in.initial_state.select(0, b).copy_(caches[b]->mamba.ssm);
    mamba::SsdOutputs out = ops::ssd_scan(in, m.sequential_ssd ? 0 : m.chunk_size);
    for (int64_t b = 0; b < batch; ++b) caches[b]->mamba.ssm.copy_(out.final_state.select(0, b));
    y = out.y.view({batch, seq, inner});
  } else {
    // Decode and verification: the recurrence position by position, in place (spec §3.6), keeping
    // the state after every position when asked.
    if (keep_checkpoints)
      for (int64_t b = 0; b < batch; ++b) caches[b]->mamba.ssm_after = Tensor::empty({seq, nh, P, N}, DType::F32);
    y = Tensor::empty({batch, seq, inner}, DType::F32);
    const float* pdt = dt.data<float>();
    parallel_for(batch * nh, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bh = begin; bh < end; ++bh) {
        const int64_t b = bh / nh, h = bh % nh, g = h / heads_per_group;
        MambaCache& cache = caches[b]->mamba;
        float* S = cache.ssm.data<float>() + h * P * N;
        for (int64_t t = 0; t < seq; ++t) {
          const float* row = xbc.data<float>() + (b * seq + t) * C;
          const float *xh = row + h * P, *Bg = row + inner + g * N, *Cg = row + inner + gn + g * N;
          const float step = pdt[(b * seq + t) * nh + h], decay = std::exp(step * A[h]);
          float* yt = y.data<float>() + (b * seq + t) * inner + h * P;
          for (int64_t i = 0; i < P; ++i) {
            float* s = S + i * N;
            float acc = 0.0f;
            for (int64_t j = 0; j < N; ++j) {
              s[j] = decay * s[j] + step * xh[i] * Bg[j];
              acc += s[j] * Cg[j];
            }
            yt[i] = acc + D[h] * xh[i];
          }
          if (keep_checkpoints)
            std::memcpy(cache.ssm_after.data<float>() + (t * nh + h) * P * N, S, sizeof(float) * P * N);
        }
      }
    });
  }

  y = ops::gated_rms_norm(y, z, m.norm_weight.value, inner / G, m.eps);
  return ops::linear(y, m.out_proj_weight.value,
                     m.out_proj_bias && m.adds_out_bias ? m.out_proj_bias->value : Tensor());
}

std::vector<LayerCache*> layer_caches(std::span<SequenceCache* const> caches, bool mtp, size_t layer) {
  std::vector<LayerCache*> out;
  for (SequenceCache* c : caches) out.push_back(mtp ? &c->mtp_layers[layer] : &c->layers[layer]);
  return out;
}

Tensor logits_of(const HybridModel& model, const Tensor& final_hidden, LogitsAt at) {
  switch (at) {
    case LogitsAt::None: return Tensor();
    case LogitsAt::Last: return model.lm_logits(final_hidden.narrow(1, final_hidden.size(1) - 1, 1).contiguous());
    case LogitsAt::All: return model.lm_logits(final_hidden);
  }
  return Tensor();
}

void check_caches(const HybridModel& model, const Tensor& ids, std::span<SequenceCache* const> caches) {
  NT_CHECK(ids.dim() == 2 && ids.size(1) >= 1, "decode step: input ids must be [batch, positions], got {}", ids.str());
  NT_CHECK(static_cast<int64_t>(caches.size()) == ids.size(0), "decode step: {} rows of ids but {} caches",
           ids.size(0), caches.size());
  for (SequenceCache* c : caches) {
    NT_CHECK(c != nullptr && c->layers.size() == model.layers.size(),
             "decode step: a cache was not made for this model (it has {} layers)", model.layers.size());
  }
}

}  // namespace

Tensor block_step(const Block& block, const Tensor& h, std::span<LayerCache* const> caches, bool keep_checkpoints) {
  Tensor x = block.norm.forward(h);
  Tensor y;
  if (const auto* a = dynamic_cast<const Attention*>(block.mixer.get())) {
    y = attention_step(*a, x, caches);
  } else if (const auto* m = dynamic_cast<const Mamba2Mixer*>(block.mixer.get())) {
    y = mamba_step(*m, x, caches, keep_checkpoints);
  } else {
    y = block.mixer->forward(x);  // MoE and MLP see each position on its own: no state
  }
  return ops::add(h, y);
}

StepOutput model_step(const HybridModel& model, const Tensor& input_ids, std::span<SequenceCache* const> caches,
                      const StepOptions& options) {
  check_caches(model, input_ids, caches);
  const int64_t seq = input_ids.size(1);
  Tensor h = model.embed(input_ids);  // checks the ids against the vocabulary
  for (size_t l = 0; l < model.layers.size(); ++l) {
    std::vector<LayerCache*> lc = layer_caches(caches, false, l);
    h = block_step(model.layers[l], h, lc, options.keep_checkpoints);
  }
  StepOutput out;
  out.final_hidden = model.norm_f.forward(h);
  out.logits = logits_of(model, out.final_hidden, options.logits);
  for (SequenceCache* c : caches) {
    c->length += seq;
    c->last_step_positions = seq;
    c->last_step_has_checkpoints = options.keep_checkpoints;
  }
  return out;
}

StepOutput mtp_step(const HybridModel& model, const Tensor& hidden, const Tensor& next_ids,
                    std::span<SequenceCache* const> caches, LogitsAt logits) {
  NT_CHECK(!model.mtp.empty(), "the model has no MTP block (config 'num_nextn_predict_layers' is 0)");
  check_caches(model, next_ids, caches);
  NT_CHECK(hidden.dim() == 3 && hidden.size(0) == next_ids.size(0) && hidden.size(1) == next_ids.size(1) &&
               hidden.size(2) == model.config.hidden_size,
           "MTP step: hidden {} does not match the ids {}", hidden.str(), next_ids.str());
  const MtpBlock& block = model.mtp[0];
  // Order [embedding, hidden] (Megatron _concat_embeddings), as MtpBlock::forward.
  Tensor u = ops::linear(ops::cat({block.enorm.forward(model.embed(next_ids)), block.hnorm.forward(hidden)}, -1),
                         block.eh_proj.value);
  for (size_t l = 0; l < block.layers.size(); ++l) {
    std::vector<LayerCache*> lc = layer_caches(caches, true, l);
    u = block_step(block.layers[l], u, lc, false);
  }
  StepOutput out;
  out.final_hidden = block.final_layernorm.forward(u);
  out.logits = logits_of(model, out.final_hidden, logits);
  for (SequenceCache* c : caches) c->mtp_length += next_ids.size(1);
  return out;
}

}  // namespace nemotron::decode
