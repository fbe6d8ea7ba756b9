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
#pragma once
#include <vector>

#include "model/layer.h"
#include "model/mtp.h"

namespace nemotron {

class HybridModel {
 public:
  explicit HybridModel(ModelConfig config, ParallelState ps = ParallelState::single(), ModelOptions options = {});

  // Every parameter in checkpoint order: embeddings, layers, norm_f, lm_head, then MTP blocks.
  std::vector<Param*> params();
  // Loads every parameter from HF-named tensors; errors on a missing, extra or misshapen tensor.
  // Accepts "backbone.embedding.weight" for "backbone.embeddings.weight".
  void load_weights(const WeightMap& weights, const std::string& source = "weights");

  struct Output {
    Tensor logits;                     // F32 [B, T, V]
    Tensor final_hidden;               // F32 [B, T, H], after norm_f (the MTP input)
    std::vector<Tensor> hidden_states;  // when asked: [0] embeddings, [l+1] output of layer l (before norm_f)
  };
  // input_ids: I64 or I32 [B, T] with ids in [0, vocab_size).
  Output forward(const Tensor& input_ids, bool keep_hidden_states = false) const;

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
};

}  // namespace nemotron
