// The model run on new positions with caches (incremental decoding), built only from the layers'
// public parameters and the existing free functions (spec/model.md §3.4–§3.11):
//
//   prefill:      model_step(model, prompt chunk [1, T], {&cache})        -> caches extended by T
//   decode:       model_step(model, next tokens [B, 1], {&c0, ..., &cB-1}) -> one position each
//   verification: model_step(..., [B, K+1], ..., {.keep_checkpoints = true}), then
//                 cache.keep_first(accepted + 1)
//
// Every row of a step has the same number of new positions T; the rows' caches may hold different
// numbers of past positions. Each result equals running the whole sequence through
// HybridModel::forward (up to fp32 rounding; tested).
//
// Devices: everything goes through the op API, so a model moved to a GPU (HybridModel::to) with
// caches made for it (SequenceCache takes the model's device) decodes there; the ids may live
// anywhere. Ids on the host are checked against the vocabulary; I64 ids on the model's GPU are taken
// as they are (they are meant to be a previous step's argmax, e.g. greedy MTP drafts that never
// leave the device). The per-row pieces (attention over a row's KV cache, the conv window, the SSM update)
// are the decoding ops of kernels/ops.h, one launch for the whole batch; MoE and MLP layers run
// their mixer's forward.
#pragma once
#include <span>

#include "model/decode_state.h"

namespace nemotron::decode {

enum class LogitsAt { None, Last, All };

struct StepOptions {
  LogitsAt logits = LogitsAt::Last;
  // Keep the Mamba states after every position so that the step can be partly undone.
  bool keep_checkpoints = false;
};

struct StepOutput {
  Tensor final_hidden;  // [B, T, H] after norm_f (the MTP input), on the model's device
  Tensor logits;        // [B, T, V] (All), [B, 1, V] (Last) or undefined (None), on the model's device
};

// Runs `input_ids` (I64/I32 [B, T]) at the next T positions of each row's sequence and extends the
// caches. caches.size() == B.
StepOutput model_step(const HybridModel& model, const Tensor& input_ids, std::span<SequenceCache* const> caches,
                      const StepOptions& options = {});

// Runs the MTP block (the first one) at the next T MTP positions of each row: position p reads the
// hidden state `hidden` [B, T, H] (the main model's after norm_f at p, or the previous draft's
// output) and the token one step ahead `next_ids` [B, T]. Returns the block output after
// final_layernorm as final_hidden (the next draft's hidden input) and its logits.
StepOutput mtp_step(const HybridModel& model, const Tensor& hidden, const Tensor& next_ids,
                    std::span<SequenceCache* const> caches, LogitsAt logits = LogitsAt::Last);

// One pre-norm block on new positions, h [B, T, H]: h + mixer(norm(h)) with the rows' caches of
// this layer. Exposed for tests.
Tensor block_step(const Block& block, const Tensor& h, std::span<LayerCache* const> caches, bool keep_checkpoints);

}  // namespace nemotron::decode
