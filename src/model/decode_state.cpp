#include "model/decode_state.h"

#include <algorithm>

#include "kernels/ops.h"
#include "model/attention.h"
#include "model/mamba2.h"

namespace nemotron::decode {

void AttentionCache::reserve(int64_t positions) {
  if (positions <= capacity()) return;
  Tensor nk = Tensor::zeros({positions, width}, DType::F32, device);
  Tensor nv = Tensor::zeros({positions, width}, DType::F32, device);
  if (length > 0) ops::copy_batch_({nk.narrow(0, 0, length), nv.narrow(0, 0, length)},
                                   {k.narrow(0, 0, length), v.narrow(0, 0, length)});
  k = nk;
  v = nv;
}

void AttentionCache::make_room(int64_t n) {
  // Doubling keeps appends amortised O(1) when the caller did not reserve.
  if (length + n > capacity()) reserve(std::max(length + n, 2 * capacity()));
}

MambaCache::MambaCache(int64_t conv_kernel, int64_t conv_dim, int64_t heads, int64_t head_dim, int64_t state,
                       Device device)
    : conv(Tensor::zeros({conv_kernel - 1, conv_dim}, DType::F32, device)),
      ssm(Tensor::zeros({heads, head_dim, state}, DType::F32, device)) {}

namespace {

LayerCache make_layer_cache(const Block& block, Device device) {
  LayerCache c;
  c.kind = block.kind();
  if (const auto* a = dynamic_cast<const Attention*>(block.mixer.get())) {
    c.attention = AttentionCache(a->num_kv_heads * a->head_dim, device);
  } else if (const auto* m = dynamic_cast<const Mamba2Mixer*>(block.mixer.get())) {
    c.mamba = MambaCache(m->conv_kernel, m->conv_dim, m->num_heads, m->head_dim, m->state_size, device);
  }
  return c;
}

int64_t tensor_bytes(const Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

}  // namespace

SequenceCache::SequenceCache(const HybridModel& model) {
  const Device device = model.embeddings.value.defined() ? model.embeddings.value.device() : Device::cpu();
  for (const Block& b : model.layers) layers.push_back(make_layer_cache(b, device));
  if (!model.mtp.empty())
    for (const Block& b : model.mtp[0].layers) mtp_layers.push_back(make_layer_cache(b, device));
}

void SequenceCache::reserve(int64_t positions, int64_t mtp_positions) {
  for (LayerCache& c : layers)
    if (c.kind == LayerKind::Attention) c.attention.reserve(positions);
  for (LayerCache& c : mtp_layers)
    if (c.kind == LayerKind::Attention) c.attention.reserve(mtp_positions);
}

void SequenceCache::keep_first(int64_t n) {
  SequenceCache* self[] = {this};
  const int64_t counts[] = {n};
  decode::keep_first(self, counts);
}

void keep_first(std::span<SequenceCache* const> caches, std::span<const int64_t> counts) {
  NT_CHECK(caches.size() == counts.size(), "keep_first: {} caches but {} counts", caches.size(), counts.size());
  for (size_t i = 0; i < caches.size(); ++i) {
    const SequenceCache& c = *caches[i];
    NT_CHECK(c.last_step_has_checkpoints, "cannot roll back: the last step kept no checkpoints");
    NT_CHECK(counts[i] >= 1 && counts[i] <= c.last_step_positions, "cannot keep {} positions of a step of {}",
             counts[i], c.last_step_positions);
  }
  std::vector<Tensor> dst, src;
  for (size_t i = 0; i < caches.size(); ++i) {
    SequenceCache& c = *caches[i];
    const int64_t n = counts[i], drop = c.last_step_positions - n;
    for (LayerCache& l : c.layers) {
      if (l.kind == LayerKind::Attention) {
        l.attention.length -= drop;
      } else if (l.kind == LayerKind::Mamba && drop > 0) {
        MambaCache& m = l.mamba;
        dst.push_back(m.ssm);
        src.push_back(m.ssm_after.select(0, n - 1));
        // The window after position n-1 is rows n .. n+K-2 of [conv before the step, step inputs].
        dst.push_back(m.conv);
        src.push_back(m.xbc_window.narrow(0, n, m.conv.size(0)));
      }
    }
    c.length -= drop;
    c.last_step_positions = n;
    c.last_step_has_checkpoints = false;
  }
  ops::copy_batch_(dst, src);
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
