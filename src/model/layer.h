// What every layer of the model shares: RMSNorm, the Mixer interface, and the pre-norm residual
// Block that wraps one mixer (spec/model.md §3.2–3.3).
//
// Layers own their parameters (Param: this rank's shard of an HF tensor) and compute forward() in
// fp32 on the CPU. forward() is const and keeps no state, so a hand-written backward can be added
// beside it later with its own saved activations.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/param.h"
#include "parallel/parallel_state.h"

namespace nemotron {

// y = weight * x / sqrt(mean(x²) + eps) over the last dimension (HF NemotronHRMSNorm).
class RMSNorm {
 public:
  RMSNorm(std::string weight_name, int64_t dim, float eps);
  Tensor forward(const Tensor& x) const;
  std::vector<Param*> params() { return {&weight}; }

  Param weight;
  float eps;
};

// One of the four mixers. Input and output are [batch, seq, hidden] F32. With tensor or expert
// parallelism the output is this rank's partial sum (the row-parallel projection's contribution);
// adding the partial sums of all ranks gives the full output.
class Mixer {
 public:
  virtual ~Mixer() = default;
  virtual LayerKind kind() const = 0;
  virtual Tensor forward(const Tensor& x) const = 0;
  virtual std::vector<Param*> params() = 0;
};

// Makes the mixer of `kind` whose parameters are named `prefix` + "mixer." + ...
std::unique_ptr<Mixer> make_mixer(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps,
                                  const std::string& prefix, const ModelOptions& options);

// h + mixer(norm(h)); parameters `prefix` + "norm.weight" and `prefix` + "mixer.*".
class Block {
 public:
  Block(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix,
        const ModelOptions& options);
  Tensor forward(const Tensor& h) const;
  std::vector<Param*> params();
  LayerKind kind() const { return mixer->kind(); }

  RMSNorm norm;
  std::unique_ptr<Mixer> mixer;
};

// Appends b's elements to a (for collecting parameter lists).
inline void append(std::vector<Param*>& a, const std::vector<Param*>& b) { a.insert(a.end(), b.begin(), b.end()); }

}  // namespace nemotron
