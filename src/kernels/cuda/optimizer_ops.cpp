// The optimizer's ops on the GPU (ops.h, "optimizer"): tensors to the launchers of optimizer.cu.
// Arguments are checked by ops.cpp. The single-tensor AdamW step and sum of squares run the
// multi-tensor kernels on a list of one.
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

namespace {

launch::AdamWArgs adamw_args(const ops::AdamWScalars& s) {
  return {s.decay_factor, s.lerp_weight, s.beta2, s.one_minus_beta2, s.bc2_sqrt, s.eps, s.neg_step_size, s.grad_scale};
}

std::vector<launch::TensorArrays> one_array_list(const std::vector<Tensor>& xs) {
  std::vector<launch::TensorArrays> list(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) list[i] = {{xs[i].data<float>()}, xs[i].numel(), false};
  return list;
}

}  // namespace

void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const ops::AdamWScalars& s) {
  cuda::multi_tensor_adamw_step_({param}, {grad}, {exp_avg}, {exp_avg_sq}, {true}, s);
}

void multi_tensor_adamw_step_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                              const std::vector<bool>& weight_decay, const ops::AdamWScalars& s) {
  std::vector<launch::TensorArrays> list(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    list[i] = {{params[i].data<float>(), grads[i].data<float>(), exp_avgs[i].data<float>(), exp_avg_sqs[i].data<float>()},
               params[i].numel(),
               weight_decay[i]};
  NT_CUDA_CHECK(launch::multi_tensor_adamw(list.data(), static_cast<int64_t>(list.size()), adamw_args(s),
                                           current_stream()));
}

double sum_of_squares(const Tensor& x) {
  elem_of(x);
  return cuda::multi_tensor_sum_of_squares({x.contiguous().to(DType::F32)});
}

double multi_tensor_sum_of_squares(const std::vector<Tensor>& xs) {
  const std::vector<launch::TensorArrays> list = one_array_list(xs);
  const int64_t count = static_cast<int64_t>(list.size()), chunks = launch::multi_tensor_chunks(list.data(), count);
  // The chunk sums, then the total (from the caching allocator: no cudaMalloc in steady state).
  Tensor sums = Tensor::empty({chunks + 1}, DType::F64, xs[0].device());
  double* partial = sums.data<double>();
  NT_CUDA_CHECK(launch::multi_tensor_sum_of_squares(list.data(), count, partial, partial + chunks, current_stream()));
  return sums.narrow(0, chunks, 1).to(Device::cpu()).item();  // the one host synchronisation
}

void multi_tensor_scale_(const std::vector<Tensor>& xs, float s) {
  const std::vector<launch::TensorArrays> list = one_array_list(xs);
  NT_CUDA_CHECK(launch::multi_tensor_scale(list.data(), static_cast<int64_t>(list.size()), s, current_stream()));
}

void accumulate_(Tensor& acc, const Tensor& x_in) {
  const launch::Elem t = elem_of(x_in);
  const Tensor x = x_in.contiguous();
  NT_CUDA_CHECK(launch::accumulate(acc.data<float>(), t, x.raw_data(), acc.numel(), current_stream()));
}

}  // namespace nemotron::cuda
