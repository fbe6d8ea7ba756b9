#include "model/param.h"

#include <set>

#include "kernels/ops.h"

namespace nemotron {

Param Param::whole(std::string name, Shape full_shape) {
  Param p;
  p.name = std::move(name);
  p.full_shape = std::move(full_shape);
  return p;
}

Param Param::sharded(std::string name, Shape full_shape, int dim, std::vector<Range> ranges) {
  Param p;
  p.name = std::move(name);
  p.full_shape = std::move(full_shape);
  NT_CHECK(dim >= 0 && dim < static_cast<int>(p.full_shape.size()), "{}: shard dimension {} out of range for {}",
           p.name, dim, shape_str(p.full_shape));
  for (const Range& r : ranges) {
    NT_CHECK(r.begin >= 0 && r.end() <= p.full_shape[dim], "{}: shard range [{}, {}) outside dimension {} of {}",
             p.name, r.begin, r.end(), dim, shape_str(p.full_shape));
  }
  p.shard_dim = dim;
  p.ranges = std::move(ranges);
  return p;
}

Shape Param::local_shape() const {
  if (!is_sharded()) return full_shape;
  Shape s = full_shape;
  s[shard_dim] = 0;
  for (const Range& r : ranges) s[shard_dim] += r.length;
  return s;
}

Tensor Param::select_shard(const Tensor& full) const {
  // Always a fresh F32 copy: the source may be a read-only memory map of a checkpoint file.
  Tensor out = Tensor::empty(local_shape(), DType::F32);
  if (!is_sharded()) {
    out.copy_(full);
    return out;
  }
  int64_t at = 0;
  for (const Range& r : ranges) {
    out.narrow(shard_dim, at, r.length).copy_(full.narrow(shard_dim, r.begin, r.length));
    at += r.length;
  }
  return out;
}

void Param::load(const Tensor& full) {
  NT_CHECK(full.shape() == full_shape, "tensor '{}' has shape {}, expected {}", name, shape_str(full.shape()),
           shape_str(full_shape));
  DType t = full.dtype();
  NT_CHECK(t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F64,
           "tensor '{}' has dtype {}; an unquantized model needs F32, BF16, F16 or F64 weights", name, dtype_name(t));
  NT_CHECK(full.device().is_cpu(), "tensor '{}' is on {}; load weights from host memory", name, full.device().str());
  value = select_shard(full);
}

namespace {
Device device_of(const Tensor& value) { return value.defined() ? value.device() : Device::cpu(); }
}  // namespace

void Param::zero_grad() {
  if (!requires_grad) return;
  if (!grad.defined()) {
    grad = Tensor::zeros(local_shape(), DType::F32, device_of(value));
  } else {
    grad.zero_();
  }
}

Tensor& Param::grad_buffer() {
  if (!grad.defined()) grad = Tensor::zeros(local_shape(), DType::F32, device_of(value));
  return grad;
}

void Param::accumulate_grad(const Tensor& g) {
  if (!requires_grad) return;
  NT_CHECK(g.shape() == local_shape(), "gradient for '{}' has shape {}, expected {}", name, shape_str(g.shape()),
           shape_str(local_shape()));
  // In place: the gradient keeps its storage across micro-batches (no new tensor per call).
  ops::accumulate_(grad_buffer(), g);
}

void load_params(const std::vector<Param*>& params, const WeightMap& weights, const std::string& source,
                 bool reject_extra) {
  std::set<std::string> used;
  std::vector<std::string> missing;
  for (Param* p : params) {
    auto it = weights.find(p->name);
    if (it == weights.end()) {
      missing.push_back(p->name);
      continue;
    }
    try {
      p->load(it->second);
    } catch (const Error& e) {
      fail("{}: {}", source, e.what());
    }
    used.insert(p->name);
  }
  auto listing = [](const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < 8; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > 8) s += fmt::format(", ... ({} in all)", names.size());
    return s;
  };
  NT_CHECK(missing.empty(), "{}: missing tensor(s) the config requires: {}", source, listing(missing));
  if (reject_extra) {
    std::vector<std::string> extra;
    for (const auto& [name, t] : weights)
      if (!used.count(name)) extra.push_back(name);
    NT_CHECK(extra.empty(), "{}: unexpected tensor(s) that the config does not describe: {}", source,
             listing(extra));
  }
}

}  // namespace nemotron
