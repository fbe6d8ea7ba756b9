// The kernel table of issue 5: each hot op of the Nano-shaped proxy's training step, timed alone on
// one GPU at the proxy's sizes (sequence 4096, micro-batch 1), beside the ceilings measured in the same
// run (a large bf16 GEMM, a device-to-device copy).
//
//   bench_kernels [--iters 10] [--seq 4096]
//
// Columns: milliseconds per call, the work it does (FLOPs or bytes, as the row says), and the achieved
// rate as a fraction of the ceiling row of its kind. FLOPs count useful work:
//   GEMM                  2·M·N·K (grouped: summed over the experts' row blocks)
//   SSD (chunk Q)         per token and head 2·Q·P + 4·N·P, plus 2·Q·N per token and group (C·Bᵀ);
//                         the backward counts 2 x the forward
//   causal attention      forward 2·T²·heads·head_dim (QKᵀ and PV over the lower triangle), backward
//                         2.5 x the forward (five products instead of two)
//   cross-entropy         bytes: the logits read twice and written once
// Prints a table and one JSON line per row. Without a GPU it says so and exits 0.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/ops.h"
#ifdef NEMOTRON_WITH_CUDA
#include "gpu_timing.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#endif

using namespace nemotron;

namespace {

struct Row {
  std::string name, unit;
  double ms, work, rate, ceiling;  // work in FLOP or bytes; rate per second; ceiling: same unit
};

#ifdef NEMOTRON_WITH_CUDA
Tensor random(Shape shape, DType dtype, float scale, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = normal(gen);
  return Tensor::from_vector(v, shape).to(Device::cuda()).to(dtype);
}

using bench::time_ms;
#endif

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  int64_t iters = 10, T = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--iters") {
      iters = std::atoll(value.c_str());
    } else if (flag == "--seq") {
      T = std::atoll(value.c_str());
    } else {
      std::fprintf(stderr, "unknown flag %s (flags: --iters N --seq N)\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0 || iters < 1 || T < 1) {
    std::fprintf(stderr, "usage: bench_kernels [--iters 10] [--seq 4096]\n");
    return 2;
  }
#ifndef NEMOTRON_WITH_CUDA
  std::printf("bench_kernels: built without CUDA; nothing to measure\n");
  return 0;
#else
  if (!cuda::available()) {
    std::printf("bench_kernels: no CUDA device found; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp props{};
  if (cudaGetDeviceProperties(&props, 0) == cudaSuccess) std::printf("device: %s\n", props.name);
  const DType bf16 = DType::BF16;
  std::vector<Row> rows;
  auto add = [&](std::string name, std::string unit, double ms, double work, double ceiling) {
    const double rate = work / (ms / 1e3);
    rows.push_back({std::move(name), std::move(unit), ms, work, rate, ceiling});
    const Row& r = rows.back();
    std::printf("{\"bench\": \"kernel\", \"name\": \"%s\", \"ms\": %.4f, \"work\": %.6e, \"unit\": \"%s\", "
                "\"rate\": %.6e, \"of_ceiling\": %.3f}\n",
                r.name.c_str(), r.ms, r.work, r.unit.c_str(), r.rate, ceiling > 0 ? r.rate / ceiling : 0.0);
  };

  // ---- ceilings
  double gemm_peak = 0, copy_peak = 0;
  {
    const int64_t n = 8192;
    Tensor a = random({n, n}, bf16, 1.0f, 1), b = random({n, n}, bf16, 1.0f, 2);
    const double ms = time_ms([&] { ops::matmul(a, b); }, iters);
    gemm_peak = 2.0 * n * n * n / (ms / 1e3);
    add("bf16 GEMM 8192^3 (ceiling)", "FLOP", ms, 2.0 * n * n * n, gemm_peak);
  }
  {
    const int64_t n = int64_t{1} << 28;  // 1 GiB of F32
    Tensor src = Tensor::zeros({n}, DType::F32, Device::cuda()), dst = Tensor::zeros({n}, DType::F32, Device::cuda());
    const double ms = time_ms([&] { dst.copy_(src); }, iters);
    copy_peak = 2.0 * 4.0 * n / (ms / 1e3);
    add("device copy 1 GiB (ceiling)", "B", ms, 2.0 * 4.0 * n, copy_peak);
  }

  // ---- GEMMs at the proxy's shapes (x [T, in] @ W[out, in]ᵀ)
  const int64_t H = 2688, V = 131072;
  struct Shape3 {
    const char* name;
    int64_t out, in;
  };
  for (const Shape3& g : {Shape3{"GEMM Mamba in_proj", 10304, H}, Shape3{"GEMM Mamba out_proj", H, 4096},
                          Shape3{"GEMM shared expert up", 3712, H}, Shape3{"GEMM lm_head", V, H}}) {
    Tensor x = random({T, g.in}, bf16, 1.0f, 3), w = random({g.out, g.in}, bf16, 0.02f, 4);
    const double flops = 2.0 * T * g.out * g.in;
    add(fmt::format("{} fwd [{}x{}]x[{}x{}]^T", g.name, T, g.in, g.out, g.in), "FLOP",
        time_ms([&] { ops::linear(x, w); }, iters), flops, gemm_peak);
    Tensor dy = random({T, g.out}, bf16, 1.0f, 5), dw = Tensor::zeros({g.out, g.in}, DType::F32, Device::cuda());
    add(fmt::format("{} wgrad (fp32 accumulate)", g.name), "FLOP",
        time_ms([&] { ops::matmul_add_(dw, dy, x, /*trans_a=*/true); }, iters), flops, gemm_peak);
  }

  // ---- routed experts: 4096 tokens x top-6 over 128 experts (uniformly drawn expert per assignment)
  {
    const int64_t E = 128, rows = T * 6, I = 1856;
    std::mt19937 gen(18);
    std::vector<int64_t> counts(static_cast<size_t>(E), 0);
    for (int64_t i = 0; i < rows; ++i) ++counts[std::uniform_int_distribution<size_t>(0, E - 1)(gen)];
    Tensor x = random({rows, H}, bf16, 1.0f, 19), dy = random({rows, I}, bf16, 1.0f, 20);
    std::vector<Tensor> w, grads;
    for (int64_t e = 0; e < E; ++e) {
      w.push_back(random({I, H}, bf16, 0.02f, 100 + static_cast<uint32_t>(e)));
      grads.push_back(Tensor::zeros({I, H}, DType::F32, Device::cuda()));
    }
    const double flops = 2.0 * rows * I * H;
    // cuBLAS (cublasGemmGroupedBatchedEx; the wgrad as cuBLASLt calls on 8 streams), then the native
    // kernels of grouped_gemm.cu in each tile shape, on the same data.
    const cuda::GroupedGemm backend = cuda::grouped_gemm();
    const int native_config = cuda::native_gemm_config();
    cuda::set_grouped_gemm(cuda::GroupedGemm::Grouped);
    add(fmt::format("MoE grouped GEMM up fwd ({} rows, 128 experts)", rows), "FLOP",
        time_ms([&] { ops::moe_grouped_matmul(x, counts, w, /*trans_w=*/true); }, iters), flops, gemm_peak);
    add("MoE grouped GEMM up dgrad", "FLOP",
        time_ms([&] { ops::moe_grouped_matmul(dy, counts, w, /*trans_w=*/false); }, iters), flops, gemm_peak);
    add("MoE grouped GEMM up wgrad (fp32 accumulate)", "FLOP",
        time_ms([&] { ops::moe_grouped_weight_grad_(grads, dy, x, counts); }, iters), flops, gemm_peak);
    cuda::set_grouped_gemm(cuda::GroupedGemm::Native);
    for (int config = 0; config < cuda::launch::kNativeGemmConfigs; ++config) {
      cuda::set_native_gemm_config(config);
      const std::string tiles = cuda::launch::native_gemm_config_name(config);
      add(fmt::format("MoE native GEMM up fwd [{}]", tiles), "FLOP",
          time_ms([&] { ops::moe_grouped_matmul(x, counts, w, /*trans_w=*/true); }, iters), flops, gemm_peak);
      add(fmt::format("MoE native GEMM up dgrad [{}]", tiles), "FLOP",
          time_ms([&] { ops::moe_grouped_matmul(dy, counts, w, /*trans_w=*/false); }, iters), flops, gemm_peak);
      add(fmt::format("MoE native GEMM up wgrad [{}]", tiles), "FLOP",
          time_ms([&] { ops::moe_grouped_weight_grad_(grads, dy, x, counts); }, iters), flops, gemm_peak);
    }
    cuda::set_grouped_gemm(backend);
    cuda::set_native_gemm_config(native_config);
  }

  // ---- fused cross-entropy over the vocabulary
  {
    Tensor logits = random({T, V}, bf16, 1.0f, 6);
    std::vector<int64_t> labels(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i) labels[static_cast<size_t>(i)] = (i * 7919) % V;
    Tensor lab = Tensor::from_vector(labels, {T}).to(Device::cuda());
    Tensor w = Tensor::from_vector(std::vector<float>(static_cast<size_t>(T), 1.0f), {T}).to(Device::cuda());
    const double bytes = 3.0 * 2.0 * T * V;
    add("cross-entropy fwd+grad bf16 [4096x131072]", "B",
        time_ms([&] { ops::cross_entropy_(logits, lab, w, 1.0f); }, iters), bytes, copy_peak);
  }

  // ---- Mamba-2 SSD scan (64 heads x 64, state 128, 8 groups, chunk 128)
  {
    const int64_t nh = 64, P = 64, N = 128, G = 8, Q = 128;
    ops::SsdInputs in;
    in.x = random({1, T, nh, P}, bf16, 1.0f, 7);
    in.dt = ops::add_scalar(ops::scale(random({1, T, nh}, DType::F32, 1.0f, 8), 0.0f), 0.05f);
    in.A = ops::add_scalar(ops::scale(random({nh}, DType::F32, 1.0f, 9), 0.0f), -1.0f);
    in.B = random({1, T, G, N}, bf16, 1.0f, 10);
    in.C = random({1, T, G, N}, bf16, 1.0f, 11);
    in.D = random({nh}, DType::F32, 1.0f, 12);
    const double flops = static_cast<double>(T) * (nh * (2.0 * Q * P + 4.0 * N * P) + G * 2.0 * Q * N);
    add("SSD scan fwd bf16", "FLOP", time_ms([&] { ops::ssd_scan(in, Q); }, iters), flops, gemm_peak);
    Tensor dy = random({1, T, nh, P}, bf16, 1.0f, 13);
    add("SSD scan bwd bf16", "FLOP", time_ms([&] { ops::ssd_scan_backward(in, dy, Q); }, iters), 2.0 * flops,
        gemm_peak);
  }

  // ---- causal attention (32 query / 2 KV heads x 128)
  {
    const int64_t nq = 32, nkv = 2, hd = 128;
    Tensor q = random({1, T, nq * hd}, bf16, 1.0f, 14), k = random({1, T, nkv * hd}, bf16, 1.0f, 15),
           v = random({1, T, nkv * hd}, bf16, 1.0f, 16);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const double flops = 2.0 * T * T * nq * hd;
    ops::AttentionOutput fwd;
    add("causal attention fwd bf16", "FLOP",
        time_ms([&] { fwd = ops::causal_attention(q, k, v, nq, nkv, hd, scale, true); }, iters), flops, gemm_peak);
    Tensor dout = random({1, T, nq * hd}, bf16, 1.0f, 17);
    add("causal attention bwd bf16", "FLOP",
        time_ms([&] { ops::causal_attention_backward(q, k, v, fwd, dout, nq, nkv, hd, scale); }, iters), 2.5 * flops,
        gemm_peak);
  }

  std::printf("%-52s %10s %14s %16s %10s\n", "kernel", "ms", "work", "rate", "of ceiling");
  for (const Row& r : rows) {
    const bool flop = r.unit == "FLOP";
    std::printf("%-52s %10.3f %12.3g %s %12.1f %s %9.1f%%\n", r.name.c_str(), r.ms, r.work, flop ? "F " : "B ",
                r.rate / (flop ? 1e12 : 1e9), flop ? "TF/s" : "GB/s", 100.0 * r.rate / r.ceiling);
  }
  return 0;
#endif
}
