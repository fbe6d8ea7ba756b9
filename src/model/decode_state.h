// The state that incremental decoding keeps per sequence (spec/model.md §3.6, §3.11, §8.3 item 4):
// the keys and values of every attention layer, and the convolution window and SSM state of every
// Mamba layer — for the main model and for the MTP block.
//
// One SequenceCache belongs to one sequence. A batch is a list of them, so sequences of different
// lengths never share a padded state: a Mamba state only ever sees its own sequence's tokens. The
// decoding ops (kernels/ops.h, "decoding") take the rows' tensors as lists and treat the whole batch
// in one launch on the GPU.
//
// Rolling back (speculative decoding): a step may keep checkpoints, i.e. the Mamba states after
// each of its positions. Then `keep_first(n)` restores the state after the step's first n positions
// (attention caches simply forget the later keys). Only the last step can be rolled back.
//
// Layouts (F32, on the model's device — the CPU or a GPU):
//   attention k, v       [capacity, kv_heads·head_dim]  one row per position, rows [0, length) valid;
//                                         grown by doubling (or reserved up front), so that decoding
//                                         allocates nothing per token
//   Mamba conv           [K-1, conv_dim]  the pre-convolution xBC of the last K-1 positions, oldest
//                                         first, zeros before the sequence start (spec keeps the
//                                         last K columns with the current one; the current input
//                                         always arrives with the step, so K-1 suffice)
//   Mamba ssm            [heads, head_dim, state]  fp32 (mamba_ssm_cache_dtype float32)
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/hybrid_model.h"

namespace nemotron::decode {

struct AttentionCache {
  Tensor k, v;  // F32 [capacity, width]
  int64_t width = 0;
  int64_t length = 0;  // positions stored
  Device device;

  AttentionCache() = default;
  AttentionCache(int64_t width, Device device) : width(width), device(device) {}
  int64_t capacity() const { return k.defined() ? k.size(0) : 0; }
  // Grows the buffers (keeping the stored rows) to hold at least `positions` rows.
  void reserve(int64_t positions);
  // Room for `n` more positions: at least doubles the capacity when it runs out.
  void make_room(int64_t n);
};

struct MambaCache {
  Tensor conv;  // F32 [K-1, conv_dim]
  Tensor ssm;   // F32 [heads, head_dim, state]
  // Checkpoints of the last step that asked for them (T = its positions):
  Tensor ssm_after;   // F32 [T, heads, head_dim, state]: the SSM state after each position
  Tensor xbc_window;  // F32 [K-1+T, conv_dim]: the conv window before the step, then the step's xBC

  MambaCache() = default;
  MambaCache(int64_t conv_kernel, int64_t conv_dim, int64_t heads, int64_t head_dim, int64_t state, Device device);
};

// The cache of one layer: which fields are used depends on the layer kind (MoE and MLP keep none).
struct LayerCache {
  LayerKind kind = LayerKind::MLP;
  AttentionCache attention;
  MambaCache mamba;
};

class SequenceCache {
 public:
  // Empty caches for every layer of `model`, and for its first MTP block when it has one, on the
  // device of the model's parameters.
  explicit SequenceCache(const HybridModel& model);

  std::vector<LayerCache> layers;      // one per model layer
  std::vector<LayerCache> mtp_layers;  // one per layer of the MTP block (empty without MTP)
  int64_t length = 0;                  // positions the main model has processed
  int64_t mtp_length = 0;              // positions the MTP block has processed

  // Room for `positions` positions in every attention cache (avoids regrowing while decoding).
  void reserve(int64_t positions, int64_t mtp_positions);

  // After a main-model step of T positions run with checkpoints: keep its first n (1 <= n <= T).
  // decode::keep_first does this for several sequences at once (one launch on a GPU).
  void keep_first(int64_t n);
  // Forgets MTP positions from `new_length` on. The MTP block must have only attention, MoE and
  // MLP layers (a Mamba layer there could not be cut back).
  void truncate_mtp(int64_t new_length);

  // Bytes held by the caches (excluding checkpoints).
  int64_t bytes() const;

  // Set by decode::model_step: positions of the last step and whether it kept checkpoints.
  int64_t last_step_positions = 0;
  bool last_step_has_checkpoints = false;
};

// caches[i].keep_first(counts[i]) for every i, with the Mamba states of all of them restored by one
// batched copy.
void keep_first(std::span<SequenceCache* const> caches, std::span<const int64_t> counts);

}  // namespace nemotron::decode
