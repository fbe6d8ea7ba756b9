// Which shards of the model's HF tensors each (tp, ep, pp) rank holds: the bridge between the model's
// parameters (model/param.h) and the native checkpoint's chunks.
#pragma once
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "model/config.h"
#include "parallel/parallel_state.h"

namespace nemotron::checkpoint {

// Pipeline stage of each decoder layer: contiguous, equal groups (num_hidden_layers must divide by
// pp). Embeddings live on the first stage; norm_f, lm_head and the MTP blocks on the last.
std::vector<int> pipeline_stages(const ModelConfig& cfg, int pp);

// The shards rank (ps.tp_rank, ps.ep_rank, ps.pp_rank) holds, in checkpoint order.
std::vector<ShardSpec> rank_shards(const ModelConfig& cfg, const ParallelState& ps);

// Every rank of a layout, in file order (pp, then ep, then tp), with its file name.
struct RankFile {
  ParallelState ps;
  std::string file;
};
std::vector<RankFile> layout_ranks(const Layout& layout);

}  // namespace nemotron::checkpoint
