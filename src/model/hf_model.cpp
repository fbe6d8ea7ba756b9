#include "model/hf_model.h"

namespace nemotron {

WeightMap hf_weight_map(const io::HfCheckpoint& checkpoint) {
  WeightMap weights;
  for (const std::string& name : checkpoint.names()) weights.emplace(name, checkpoint.tensor(name));
  return weights;
}

HybridModel load_hf_model(const std::string& dir, const ParallelState& ps, const ModelOptions& options) {
  io::HfCheckpoint checkpoint = io::HfCheckpoint::open(dir);
  HybridModel model(ModelConfig::from_json(checkpoint.config(), dir + "/config.json"), ps, options);
  model.load_weights(hf_weight_map(checkpoint), dir);
  return model;
}

}  // namespace nemotron
