// HybridModel: the whole NemotronH causal LM (spec/model.md §3.1, §3.10, §3.11).
//
//   h = embeddings[input_ids];  h = Block_l(h) for each layer;  h = norm_f(h);  logits = h @ lm_head^T
//
// plus the MTP blocks when the config has them. Parameters carry their HF checkpoint names
// ("backbone.layers.3.mixer.in_proj.weight", "lm_head.weight", "mtp.layers.0.eh_proj.weight").
//
// Typical use:
//   ModelConfig cfg = ModelConfig::from_file(dir + "/config.json");
//   HybridModel model(cfg);
//   model.load_weights(tensors_by_name, dir);          // WeightMap: name -> Tensor (any float dtype)
//   HybridModel::Output out = model.forward(input_ids);  // I64 [batch, seq] -> logits F32 [batch, seq, vocab]
//
// Training (one micro-batch; the trainer owns the loop, the optimizer and the reductions):
//   model.zero_grad();                                         // once per step
//   for each micro-batch: LossReport r = model.forward_backward(batch, options);   // grads accumulate
//   clip, optimizer step on params() (skip those without requires_grad), then
//   model.update_expert_bias(rate);                            // when moe_router_enable_expert_bias
#pragma once
#include <vector>

#include "model/layer.h"
#include "model/moe.h"
#include "model/mtp.h"

namespace nemotron {

// One micro-batch for training or evaluation, Megatron's GPT batch. The tensors may live on any device.
struct TrainBatch {
  Tensor tokens;     // I64 or I32 [B, T]: input ids
  Tensor labels;     // I64 or I32 [B, T]: labels[b, t] = the token that follows position t
  Tensor loss_mask;  // float [B, T]: weight of each position in the loss (usually 0/1); undefined = all 1.
                     // Positions of weight 0 may carry any label (e.g. -1 padding).
};

struct TrainOptions {
  // Multi-token prediction (Megatron mtp_num_layers / mtp_loss_scaling_factor): depths 1..mtp_depths
  // run the MTP block (one physical block is repeated; several: block k-1 at depth k) and add
  // (mtp_loss_scaling_factor / mtp_depths) · mtp_loss[k]. 0: the MTP blocks are not run.
  int64_t mtp_depths = 0;
  double mtp_loss_scaling_factor = 0.1;
  // MoE sequence-level load-balancing loss (Megatron moe_aux_loss_coeff with
  // moe_router_load_balancing_type = seq_aux_loss); 0: none.
  double moe_aux_loss_coeff = 0.0;
  // Gradient multipliers: each trainable Param::grad is increased by
  //   loss_grad_scale · ∇(lm_loss + (mtp_loss_scaling_factor / D) · Σ_k mtp_loss[k]) + aux_grad_scale · ∇aux_loss.
  // Megatron with M micro-batches: both 1/M (then the data-parallel average); with
  // calculate_per_token_loss: loss_grad_scale = this micro-batch's mask sum / the whole global batch's,
  // aux_grad_scale = 1 / (M · data-parallel size) (Megatron's MoEAuxLossAutoScaler / MTPLossAutoScaler).
  double loss_grad_scale = 1.0;
  double aux_grad_scale = 1.0;
  // Layer kinds whose activations are recomputed in the backward instead of kept (MTP blocks too).
  Recompute recompute;
};

// The numbers of one micro-batch. With all-zero masks a mean is 0 (Megatron clamps the count at 1).
struct LossReport {
  double lm_loss = 0.0;          // Σ mask·CE(logits, labels) / max(Σ mask, 1) over the main model's positions
  std::vector<double> mtp_loss;  // per depth k = 1..D: the same with tokens, labels and mask rolled left
                                 // k positions (Megatron roll_tensor: the tail filled with token 0 and
                                 // mask 0), predicted from MTP depth k
  double aux_loss = 0.0;         // Σ over MoE layers of coeff · seq_aux_loss (MTP layers of a repeated
                                 // block · 1/D); 0 in evaluate() (Megatron computes it only in training)
  double total = 0.0;            // lm_loss + (mtp_loss_scaling_factor / D) · Σ_k mtp_loss[k] + aux_loss
  int64_t tokens = 0;            // positions with a non-zero mask (Megatron's num_tokens for 0/1 masks)
};

class HybridModel {
 public:
  explicit HybridModel(ModelConfig config, ParallelState ps = ParallelState::single(), ModelOptions options = {});

  // Every parameter in checkpoint order: embeddings, layers, norm_f, lm_head, then MTP blocks.
  std::vector<Param*> params();
  // Loads every parameter from HF-named tensors; errors on a missing, extra or misshapen tensor.
  // Accepts "backbone.embedding.weight" for "backbone.embeddings.weight".
  void load_weights(const WeightMap& weights, const std::string& source = "weights");
  // Moves every parameter (value, any gradient and working copy) to `device`. forward(),
  // forward_backward() and evaluate() then expect nothing else: input ids, labels and masks may live
  // anywhere (they are small and pass through the host).
  void to(Device device);

  // Mixed precision, Megatron style: with BF16 the matrices that feed GEMMs (linear weights,
  // embeddings, lm_head; not the MoE router's gate.weight, which stays fp32 as with Megatron's
  // moe_router_dtype = fp32, nor 1-D or convolution parameters) get a BF16 working copy
  // (Param::working) that the layers compute with; activations then flow in BF16 (norms, router,
  // softmax, SSM state and loss computing in fp32 inside the ops), and weight gradients accumulate
  // into the fp32 Param::grad. Outputs (logits, hidden states) come out in BF16. F32 drops the
  // working copies. BF16 needs the model on a CUDA device (the CPU computes in fp32).
  void set_compute_dtype(DType dtype);
  DType compute_dtype() const { return compute_dtype_; }
  // Re-casts the working copies from the fp32 master weights; call after every optimizer step (and
  // after anything else that changes Param::value) while the compute dtype is BF16.
  void refresh_working_copies();

  struct Output {
    Tensor logits;                     // F32 [B, T, V] (BF16 in BF16 compute)
    Tensor final_hidden;               // F32 [B, T, H], after norm_f (the MTP input)
    std::vector<Tensor> hidden_states;  // when asked: [0] embeddings, [l+1] output of layer l (before norm_f)
  };
  // input_ids: I64 or I32 [B, T] with ids in [0, vocab_size).
  Output forward(const Tensor& input_ids, bool keep_hidden_states = false) const;
  // forward() without the output layer: the final hidden state [B, T, H] (after norm_f), appending
  // the embeddings and each layer's output to `hidden_states` when given.
  Tensor decoder_forward(const Tensor& input_ids, std::vector<Tensor>* hidden_states) const;

  // Logits of MTP depths 1..depths. Depth k returns [B, T-k, V]: position i predicts token i+k+1
  // from the main model's hidden state at i and the tokens up to i+k (it reads token i+k, the last
  // one known). `final_hidden` and `input_ids` are those of forward(); T must exceed `depths`.
  // Depth k > 1 starts from depth k-1's output. With one physical block every depth reuses it
  // (Megatron's mtp_use_repeated_layer); with several, depth k uses block k-1.
  struct MtpDepth {
    Tensor logits;  // F32 [B, T-k, V]
    Tensor hidden;  // F32 [B, T-k, H], the block output after final_layernorm
  };
  std::vector<MtpDepth> mtp_forward(const Tensor& final_hidden, const Tensor& input_ids, int64_t depths) const;

  Tensor embed(const Tensor& input_ids) const;
  Tensor lm_logits(const Tensor& h) const;

  // ---- training ----
  // Zeros every trainable parameter's grad (allocating it).
  void zero_grad();
  // Forward and backward of one micro-batch: adds to Param::grad as TrainOptions says and returns the
  // losses. MTP gradients flow into the MTP block, the shared embedding and lm_head, and into the main
  // model's final hidden state (Megatron does not detach it; mtp_detach_heads is not supported).
  // Unsharded only for now (tensor/expert/pipeline/context parallel sizes 1). Runs on the model's
  // device; the output layer's logits exist for a chunk of rows at a time.
  LossReport forward_backward(const TrainBatch& batch, const TrainOptions& options);
  // The same losses without gradients (aux_loss 0, no expert counting); options' mtp fields apply.
  LossReport evaluate(const TrainBatch& batch, const TrainOptions& options) const;
  // Every MoE layer's expert-bias update from the tokens counted since the last call (MoE::
  // update_expert_bias), decoder and MTP layers alike. Call after the optimizer step when
  // moe_router_enable_expert_bias (rate = moe_router_bias_update_rate).
  void update_expert_bias(double rate);
  // The MoE mixers (decoder layers, then MTP blocks), e.g. to all-reduce their tokens_per_expert.
  std::vector<MoE*> moe_layers();

  ModelConfig config;
  ParallelState parallel;
  ModelOptions options;

  Param embeddings;  // [V, H]
  std::vector<Block> layers;
  RMSNorm norm_f;
  Param lm_head;  // [V, H]
  std::vector<MtpBlock> mtp;

 private:
  void check_unsharded(const char* what) const;
  Device device() const;

  DType compute_dtype_ = DType::F32;
};

}  // namespace nemotron
