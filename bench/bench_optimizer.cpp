// The optimizer step on one GPU for the parameter list of the Nemotron-3-Nano-shaped proxy of issue 5
// (bench/nano_proxy.h; ~830 tensors, 768 of them routed experts' projections): train::AdamW::step
// (one multi-tensor AdamW over the whole list, a launch per 64 tensors) against the loop of
// single-tensor ops::adamw_step_ calls (a launch per tensor), and the gradient norm + clipping
// (ops::multi_tensor_sum_of_squares with one host synchronisation, ops::multi_tensor_scale_ in place)
// against the per-tensor way (ops::sum_of_squares with a synchronisation per tensor, then
// copy_(scale(g)) with a new tensor per gradient). GB/s count the bytes each step must move (AdamW:
// 16 read + 12 written per parameter; sum of squares 4; scale 8) beside a device-to-device copy of
// 1 GiB measured in the same run.
//
//   bench_optimizer [--layers K] [--iters 5]
//
// The whole proxy's fp32 weights, gradients and two moments (16 bytes x 4.6 G) do not fit one 80 GB
// card, so the list is the embeddings, the final norm, the lm_head and the first K decoder blocks of
// the pattern MEM*EME (default: as many as fit in 70% of the free memory). The per-tensor launch
// costs scale with the number of tensors, the bandwidth terms with the bytes; both are printed.
// Prints a table and one JSON line per result. Without a GPU it prints the list's size and exits 0.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/hybrid_model.h"
#include "nano_proxy.h"
#include "train/optimizer.h"
#ifdef NEMOTRON_WITH_CUDA
#include <cuda_runtime.h>

#include "gpu_timing.h"
#include "kernels/cuda/device.h"
#endif

using namespace nemotron;

namespace {

// The decoder block a parameter belongs to, or -1 for the embeddings, final norm and lm_head.
int layer_of(const std::string& name) {
  const std::string prefix = "backbone.layers.";
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  return std::atoi(name.c_str() + prefix.size());
}

struct Shapes {
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  int64_t params = 0;
};

Shapes shapes_up_to(const std::vector<Param*>& all, int layers) {
  Shapes s;
  for (const Param* p : all)
    if (layer_of(p->name) < layers) {
      s.names.push_back(p->name);
      s.shapes.push_back(p->local_shape());
      s.params += shape_numel(s.shapes.back());
    }
  return s;
}

#ifdef NEMOTRON_WITH_CUDA
using bench::time_ms;

// Fills t (a device F32 tensor) with copies of a random device buffer, in pieces.
void fill_random(Tensor& t, const Tensor& source) {
  Tensor flat = t.view({t.numel()});
  for (int64_t at = 0; at < t.numel(); at += source.numel()) {
    const int64_t n = std::min(source.numel(), t.numel() - at);
    Tensor piece = flat.narrow(0, at, n);
    piece.copy_(source.narrow(0, 0, n));
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int layers = -1, iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--layers") {
      layers = std::atoi(value.c_str());
    } else if (flag == "--iters") {
      iters = std::atoi(value.c_str());
    } else {
      std::fprintf(stderr, "unknown flag %s\nusage: bench_optimizer [--layers K] [--iters 5]\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0 || iters < 1 || layers < -1) {
    std::fprintf(stderr, "usage: bench_optimizer [--layers K] [--iters 5]\n");
    return 2;
  }
  const ModelConfig config = bench::nano_proxy_config();
  HybridModel model(config);  // for the names and shapes only: nothing is allocated
  const std::vector<Param*> all = model.params();
  const int num_layers = static_cast<int>(config.num_hidden_layers());
  const Shapes whole = shapes_up_to(all, num_layers);
  std::printf("Nano proxy: %zu tensors, %.3f G parameters, %.1f GB of fp32 weights + gradients + moments\n",
              whole.names.size(), whole.params / 1e9, 16.0 * whole.params / 1e9);
#ifndef NEMOTRON_WITH_CUDA
  std::printf("bench_optimizer: built without CUDA; nothing to measure\n");
  return 0;
#else
  if (!cuda::available()) {
    std::printf("bench_optimizer: no CUDA device found; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp props{};
  cudaGetDeviceProperties(&props, 0);
  size_t free_bytes = 0, total_bytes = 0;
  cudaMemGetInfo(&free_bytes, &total_bytes);
  const double budget = 0.7 * static_cast<double>(free_bytes) - 4.0 * (1 << 30);  // copies, clip temporaries
  if (layers < 0) {
    layers = num_layers;
    while (layers > 0 && 16.0 * shapes_up_to(all, layers).params > budget) --layers;
  }
  layers = std::min(layers, num_layers);
  const Shapes list = shapes_up_to(all, layers);
  std::printf("device: %s (%.1f GB free)\nlist: embeddings, norm_f, lm_head + the first %d blocks of %s: %zu tensors, "
              "%.3f G parameters\n",
              props.name, free_bytes / 1e9, layers, "MEM*EME", list.names.size(),
              list.params / 1e9);

  // Weights and gradients with random values (copies of one random buffer), the optimizer's state.
  const Tensor source = [] {
    std::vector<float> v(1 << 24);
    uint64_t x = 88172645463325252ull;
    for (float& f : v) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      f = static_cast<float>(static_cast<double>(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}).to(Device::cuda());
  }();
  std::vector<Tensor> values, grads;
  std::vector<train::OptimizerParam> params;
  values.reserve(list.names.size());
  grads.reserve(list.names.size());
  for (size_t i = 0; i < list.names.size(); ++i) {
    values.push_back(Tensor::empty(list.shapes[i], DType::F32, Device::cuda()));
    grads.push_back(Tensor::empty(list.shapes[i], DType::F32, Device::cuda()));
    fill_random(values.back(), source);
    fill_random(grads.back(), source);
  }
  for (size_t i = 0; i < list.names.size(); ++i)
    params.push_back({list.names[i], &values[i], &grads[i],
                      train::megatron_applies_weight_decay(list.names[i], list.shapes[i])});
  train::AdamW adam(params, {0.9, 0.95, 1e-8});
  std::vector<Tensor> exp_avg, exp_avg_sq;
  for (const auto& [name, t] : adam.state_tensors())  // exp_avg before exp_avg_sq, parameter by parameter
    (exp_avg.size() == exp_avg_sq.size() ? exp_avg : exp_avg_sq).push_back(t);
  cuda::synchronize();

  struct Row {
    std::string what;
    double ms, bytes;
  };
  std::vector<Row> rows;
  auto record = [&](const std::string& what, double ms, double bytes) {
    rows.push_back({what, ms, bytes});
    std::printf("{\"bench\": \"optimizer\", \"device\": \"%s\", \"tensors\": %zu, \"params\": %lld, \"what\": \"%s\", "
                "\"ms\": %.4f, \"GB/s\": %.1f}\n",
                props.name, list.names.size(), static_cast<long long>(list.params), what.c_str(), ms,
                bytes / ms / 1e6);
  };
  const double n = static_cast<double>(list.params);

  {
    Tensor a = Tensor::empty({1 << 28}, DType::F32, Device::cuda()), b = Tensor::empty({1 << 28}, DType::F32, Device::cuda());
    fill_random(a, source);
    record("device copy 1 GiB (reference)", time_ms([&] { b.copy_(a); }, iters), 2.0 * a.nbytes());
  }
  record("AdamW::step (multi-tensor)", time_ms([&] { adam.step(1e-4, 0.1); }, iters), 28.0 * n);
  {
    ops::AdamWScalars s;
    s.neg_step_size = -1e-4f;
    s.decay_factor = 0.99999f;
    record("per-tensor adamw_step_ loop", time_ms([&] {
             for (size_t i = 0; i < values.size(); ++i) ops::adamw_step_(values[i], grads[i], exp_avg[i], exp_avg_sq[i], s);
           }, iters),
           28.0 * n);
  }
  double norm = 0.0;
  record("grad_sq_norm_fp64 (multi-tensor, 1 sync)", time_ms([&] { norm = train::grad_sq_norm_fp64(params); }, iters),
         4.0 * n);
  record("per-tensor sum_of_squares (1 sync each)", time_ms([&] {
           double total = 0.0;
           for (const Tensor& g : grads) total += ops::sum_of_squares(g);
           norm = total;
         }, iters),
         4.0 * n);
  // Every call below scales the gradients by ~0.999 (a coefficient that rounds to 1 would skip the
  // work), so over the runs they stay far from subnormal floats.
  double total_norm = std::sqrt(norm);
  record("clip_grads_with_norm (multi-tensor scale)", time_ms([&] {
           train::clip_grads_with_norm(params, 0.999 * total_norm, total_norm);
           total_norm *= 0.999;
         }, iters),
         8.0 * n);
  record("per-tensor copy_(scale(g))", time_ms([&] {
           for (Tensor& g : grads) g.copy_(ops::scale(g, 0.999f));
         }, iters),
         16.0 * n);
  total_norm = std::sqrt(train::grad_sq_norm_fp64(params));  // the rows above scaled by different factors
  record("clip_grad_norm (norm + clip, 1 sync)", time_ms([&] {
           train::clip_grad_norm(params, 0.999 * total_norm);  // the gradients' norm becomes 0.999 x
           total_norm *= 0.999;
         }, iters),
         12.0 * n);

  std::printf("\n%s, %zu tensors, %.3f G parameters, mean of %d after a warm-up\n", props.name, list.names.size(),
              list.params / 1e9, iters);
  std::printf("%-44s %10s %9s\n", "", "ms", "GB/s");
  for (const Row& r : rows) std::printf("%-44s %10.3f %9.1f\n", r.what.c_str(), r.ms, r.bytes / r.ms / 1e6);
  return 0;
#endif
}
