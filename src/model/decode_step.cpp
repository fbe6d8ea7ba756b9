#include "model/decode_step.h"

#include "kernels/ops.h"
#include "model/attention.h"
#include "model/mamba2.h"

namespace nemotron::decode {

namespace {

// Attention of T new positions per row against everything the row's cache holds (spec §3.7): the
// new keys and values are appended first, then query i of the step sees positions 0 .. past + i.
Tensor attention_step(const Attention& a, const Tensor& x, std::span<LayerCache* const> caches) {
  const int64_t batch = x.size(0), seq = x.size(1);
  Tensor q = ops::linear(x, a.q_proj.compute());
  Tensor k = ops::linear(x, a.k_proj.compute()).to(DType::F32).contiguous();
  Tensor v = ops::linear(x, a.v_proj.compute()).to(DType::F32).contiguous();
  std::vector<Tensor> dst, src, k_cache, v_cache;
  std::vector<int64_t> lengths;
  for (int64_t b = 0; b < batch; ++b) {
    AttentionCache& cache = caches[b]->attention;
    cache.make_room(seq);
    dst.push_back(cache.k.narrow(0, cache.length, seq));
    src.push_back(k.select(0, b));
    dst.push_back(cache.v.narrow(0, cache.length, seq));
    src.push_back(v.select(0, b));
    cache.length += seq;
    k_cache.push_back(cache.k);
    v_cache.push_back(cache.v);
    lengths.push_back(cache.length);
  }
  ops::copy_batch_(dst, src);
  Tensor out = ops::cached_attention(q, k_cache, v_cache, lengths, a.num_heads, a.num_kv_heads, a.head_dim, a.scale());
  return ops::linear(out, a.o_proj.compute());
}

// The Mamba-2 mixer on T new positions per row, continuing from the rows' conv and SSM states
// (spec §3.4 for the projections and the gated norm, §3.6 for the state update).
Tensor mamba_step(const Mamba2Mixer& m, const Tensor& x, std::span<LayerCache* const> caches, bool keep_checkpoints) {
  const int64_t batch = x.size(0), seq = x.size(1);
  const int64_t nh = m.num_heads, P = m.head_dim, G = m.n_groups, N = m.state_size, C = m.conv_dim;
  const int64_t K = m.conv_kernel, inner = m.d_inner, gn = G * N;

  Tensor zxbcdt = ops::linear(x, m.in_proj_weight.compute(), m.in_proj_bias ? m.in_proj_bias->compute() : Tensor());
  Tensor z = zxbcdt.narrow(-1, 0, inner).contiguous();
  Tensor xbc_raw = zxbcdt.narrow(-1, inner, C).contiguous();
  Tensor dt = ops::discretize_dt(zxbcdt.narrow(-1, inner + C, nh).contiguous(), m.dt_bias.compute(), m.dt_min, m.dt_max);

  // Depthwise causal conv over [window before the step | the step's inputs], then SiLU.
  std::vector<Tensor> conv_states, windows, ssm_states, checkpoints;
  for (int64_t b = 0; b < batch; ++b) {
    MambaCache& cache = caches[b]->mamba;
    conv_states.push_back(cache.conv);
    ssm_states.push_back(cache.ssm);
    if (keep_checkpoints) {
      cache.xbc_window = Tensor::empty({K - 1 + seq, C}, DType::F32, x.device());
      cache.ssm_after = Tensor::empty({seq, nh, P, N}, DType::F32, x.device());
      windows.push_back(cache.xbc_window);
      checkpoints.push_back(cache.ssm_after);
    }
  }
  Tensor xbc = ops::conv_step_(xbc_raw, conv_states, m.conv1d_weight.compute(),
                               m.conv1d_bias ? m.conv1d_bias->compute() : Tensor(), windows);

  ops::SsdInputs in;
  in.x = xbc.narrow(-1, 0, inner).contiguous().view({batch, seq, nh, P});
  in.B = xbc.narrow(-1, inner, gn).contiguous().view({batch, seq, G, N});
  in.C = xbc.narrow(-1, inner + gn, gn).contiguous().view({batch, seq, G, N});
  in.dt = dt;
  in.A = ops::scale(ops::exp(m.A_log.compute()), -1.0f);
  in.D = m.D.compute();
  Tensor y;
  if (seq > 1 && !keep_checkpoints && x.device().is_cpu()) {
    // Prefill on the CPU: the chunked (or sequential) scan of the full forward, started from the
    // cached states (the chunked form is the faster one there for long prompts).
    std::vector<Tensor> initial;
    for (const Tensor& s : ssm_states) initial.push_back(s.unsqueeze(0));
    in.initial_state = ops::cat(initial, 0);
    ops::SsdOutputs out = ops::ssd_scan(in, m.sequential_ssd ? 0 : m.chunk_size);
    std::vector<Tensor> finals;
    for (int64_t b = 0; b < batch; ++b) finals.push_back(out.final_state.select(0, b));
    ops::copy_batch_(ssm_states, finals);
    y = out.y;
  } else {
    // Decode and verification: the recurrence position by position, in place (spec §3.6), keeping
    // the state after every position when asked. On a GPU also prefill: one block per (row, head)
    // scans the chunk with the state in shared memory (microseconds per position).
    y = ops::ssm_step_(in, ssm_states, checkpoints);
  }

  y = ops::gated_rms_norm(y.view({batch, seq, inner}), z, m.norm_weight.compute(), inner / G, m.eps);
  return ops::linear(y, m.out_proj_weight.compute(),
                     m.out_proj_bias && m.adds_out_bias ? m.out_proj_bias->compute() : Tensor());
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

// Token embeddings [B, T, H]. Ids on the model's GPU are the argmax of an earlier step (greedy MTP
// drafts), so they are in the vocabulary by construction: they are looked up there, without the host
// round trip that HybridModel::embed's vocabulary check would cost. Other ids go through that check.
Tensor embed_ids(const HybridModel& model, const Tensor& ids) {
  const Tensor& table = model.embeddings.compute();
  if (ids.device().is_cpu() || ids.device() != table.device() || ids.dtype() != DType::I64 ||
      table.size(0) != model.config.vocab_size)
    return model.embed(ids);
  return ops::index_select(table, ids.contiguous().flatten()).view({ids.size(0), ids.size(1), model.config.hidden_size});
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
  Tensor h = embed_ids(model, input_ids);  // host ids are checked against the vocabulary
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
  Tensor u = ops::linear(ops::cat({block.enorm.forward(embed_ids(model, next_ids)), block.hnorm.forward(hidden)}, -1),
                         block.eh_proj.compute());
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
