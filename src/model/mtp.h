// The multi-token-prediction block (spec/model.md §3.11, Megatron MultiTokenPredictionLayer): the
// MTP pattern's layers (e.g. "*E") wrapped by the input projection and a final norm.
//
//   u = eh_proj(concat(enorm(embed(next token)), hnorm(h)))  ->  pattern blocks  ->  final_layernorm
//
// Checkpoint names flatten Megatron's nesting: block b of a pattern of n layers owns
// mtp.layers.{b·n + i} for i < n; the first holds eh_proj/enorm/hnorm, the last final_layernorm.
#pragma once
#include "model/layer.h"

namespace nemotron {

class MtpBlock {
 public:
  MtpBlock(const ModelConfig& cfg, const ParallelState& ps, int64_t block_index, const ModelOptions& options);
  // h: [B, T, H] the hidden state it predicts from (the main model's after norm_f, or the previous
  // depth's output); next_embeddings: [B, T, H] embeddings of the tokens one step ahead.
  // Returns the block output after final_layernorm, which feeds lm_head and the next depth.
  Tensor forward(const Tensor& h, const Tensor& next_embeddings) const;
  std::vector<Param*> params();

  // Training. The saved activations of one application of the block (one per depth when the block
  // is repeated).
  struct Activations {
    Tensor embeddings, hidden;  // enorm and hnorm inputs
    Tensor projected_in;        // eh_proj input, concat(enorm(e), hnorm(h))
    std::vector<BlockSaved> layers;
    Tensor final_in;            // final_layernorm input
  };
  Tensor forward_train(const Tensor& h, const Tensor& next_embeddings, Activations& saved, TrainContext& ctx);
  // dout = d(loss)/d(block output). Returns d(loss)/d(h) and d(loss)/d(next_embeddings).
  struct InputGrads {
    Tensor dh, dembeddings;
  };
  InputGrads backward(const Tensor& dout, Activations& saved, TrainContext& ctx);

  RMSNorm enorm, hnorm;
  Param eh_proj;  // [H, 2H], column-parallel over tensor-parallel ranks
  std::vector<Block> layers;
  RMSNorm final_layernorm;
};

}  // namespace nemotron
