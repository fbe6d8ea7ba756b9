#include "checkpoint/model_layout.h"

#include <cstdlib>

#include "model/hybrid_model.h"

namespace nemotron::checkpoint {

std::vector<int> pipeline_stages(const ModelConfig& cfg, int pp) {
  int64_t n = cfg.num_hidden_layers();
  NT_CHECK(pp >= 1, "pipeline parallel size must be at least 1, got {}", pp);
  NT_CHECK(n % pp == 0, "pipeline parallel size {} does not divide the {} layers of the model (--pp)", pp, n);
  std::vector<int> stage(static_cast<size_t>(n));
  for (int64_t l = 0; l < n; ++l) stage[l] = static_cast<int>(l / (n / pp));
  return stage;
}

// The decoder layer a parameter belongs to ("backbone.layers.7.mixer..." → 7), or -1.
static int64_t layer_of(const std::string& name) {
  const std::string prefix = "backbone.layers.";
  if (name.rfind(prefix, 0) != 0) return -1;
  return std::strtoll(name.c_str() + prefix.size(), nullptr, 10);
}

std::vector<ShardSpec> rank_shards(const ModelConfig& cfg, const ParallelState& ps) {
  std::vector<int> stage = pipeline_stages(cfg, ps.pp_size);
  ParallelState no_pp = ps;  // the model itself is built for tp/ep; pp is a selection of layers here
  no_pp.pp_size = 1;
  no_pp.pp_rank = 0;
  HybridModel model(cfg, no_pp);
  std::vector<ShardSpec> out;
  for (Param* p : model.params()) {
    int64_t layer = layer_of(p->name);
    int owner = layer >= 0                                   ? stage[layer]
                : p->name.rfind("backbone.embeddings", 0) == 0 ? 0
                                                               : ps.pp_size - 1;
    if (owner != ps.pp_rank) continue;
    out.push_back({p->name, p->full_shape, p->shard_dim, p->ranges});
  }
  return out;
}

std::vector<RankFile> layout_ranks(const Layout& layout) {
  std::vector<RankFile> out;
  for (int p = 0; p < layout.pp; ++p)
    for (int e = 0; e < layout.ep; ++e)
      for (int t = 0; t < layout.tp; ++t) {
        ParallelState ps;
        ps.tp_size = layout.tp;
        ps.tp_rank = t;
        ps.ep_size = layout.ep;
        ps.ep_rank = e;
        ps.pp_size = layout.pp;
        ps.pp_rank = p;
        ps.validate();
        out.push_back({ps, layout.file_name(t, e, p)});
      }
  return out;
}

}  // namespace nemotron::checkpoint
