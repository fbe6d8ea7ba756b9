#include "model/decode_state.h"

#include <algorithm>
#include <cstring>

#include "model/attention.h"
#include "model/mamba2.h"

namespace nemotron::decode {

void AttentionCache::reserve(int64_t positions) {
  if (positions <= capacity()) return;
  Tensor nk = Tensor::zeros({positions, width}, DType::F32), nv = Tensor::zeros({positions, width}, DType::F32);
  if (length > 0) {
    std::memcpy(nk.data<float>(), k.data<float>(), sizeof(float) * length * width);
    std::memcpy(nv.data<float>(), v.data<float>(), sizeof(float) * length * width);
  }
  k = nk;
  v = nv;
}

void AttentionCache::append(const float* keys, const float* values, int64_t n, int64_t stride) {
  // Doubling keeps appends amortised O(1) when the caller did not reserve.
  if (length + n > capacity()) reserve(std::max(length + n, 2 * capacity()));
  float *pk = k.data<float>() + length * width, *pv = v.data<float>() + length * width;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(pk + i * width, keys + i * stride, sizeof(float) * width);
    std::memcpy(pv + i * width, values + i * stride, sizeof(float) * width);
  }
  length += n;
}

MambaCache::MambaCache(int64_t conv_kernel, int64_t conv_dim, int64_t heads, int64_t head_dim, int64_t state)
    : conv(Tensor::zeros({conv_kernel - 1, conv_dim}, DType::F32)),
      ssm(Tensor::zeros({heads, head_dim, state}, DType::F32)) {}

namespace {

LayerCache make_layer_cache(const Block& block) {
  LayerCache c;
  c.kind = block.kind();
  if (const auto* a = dynamic_cast<const Attention*>(block.mixer.get())) {
    c.attention = AttentionCache(a->num_kv_heads * a->head_dim);
  } else if (const auto* m = dynamic_cast<const Mamba2Mixer*>(block.mixer.get())) {
    c.mamba = MambaCache(m->conv_kernel, m->conv_dim, m->num_heads, m->head_dim, m->state_size);
  }
  return c;
}

int64_t tensor_bytes(const Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

}  // namespace

SequenceCache::SequenceCache(const HybridModel& model) {
  for (const Block& b : model.layers) layers.push_back(make_layer_cache(b));
  if (!model.mtp.empty())
    for (const Block& b : model.mtp[0].layers) mtp_layers.push_back(make_layer_cache(b));
}

void SequenceCache::reserve(int64_t positions, int64_t mtp_positions) {
  for (LayerCache& c : layers)
    if (c.kind == LayerKind::Attention) c.attention.reserve(positions);
  for (LayerCache& c : mtp_layers)
    if (c.kind == LayerKind::Attention) c.attention.reserve(mtp_positions);
}

void SequenceCache::keep_first(int64_t n) {
  NT_CHECK(last_step_has_checkpoints, "cannot roll back: the last step kept no checkpoints");
  NT_CHECK(n >= 1 && n <= last_step_positions, "cannot keep {} positions of a step of {}", n, last_step_positions);
  const int64_t drop = last_step_positions - n;
  for (LayerCache& c : layers) {
    if (c.kind == LayerKind::Attention) {
      c.attention.length -= drop;
    } else if (c.kind == LayerKind::Mamba) {
      MambaCache& m = c.mamba;
      m.ssm.copy_(m.ssm_after.select(0, n - 1));
      // The window after position n-1 is rows n .. n+K-2 of [conv before the step, step inputs].
      m.conv.copy_(m.xbc_window.narrow(0, n, m.conv.size(0)));
    }
  }
  length -= drop;
  last_step_positions = n;
  last_step_has_checkpoints = false;
}

void SequenceCache::truncate_mtp(int64_t new_length) {
  NT_CHECK(new_length >= 0 && new_length <= mtp_length, "cannot cut the MTP cache of {} positions to {}", mtp_length,
           new_length);
  for (LayerCache& c : mtp_layers) {
    NT_CHECK(c.kind != LayerKind::Mamba, "an MTP block with a Mamba layer cannot be rolled back");
    if (c.kind == LayerKind::Attention) c.attention.length = new_length;
  }
  mtp_length = new_length;
}

int64_t SequenceCache::bytes() const {
  int64_t total = 0;
  for (const auto* list : {&layers, &mtp_layers})
    for (const LayerCache& c : *list)
      total += tensor_bytes(c.attention.k) + tensor_bytes(c.attention.v) + tensor_bytes(c.mamba.conv) +
               tensor_bytes(c.mamba.ssm);
  return total;
}

}  // namespace nemotron::decode
