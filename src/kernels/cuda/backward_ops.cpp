// The training ops on the GPU (ops.h, "training: backward passes and fused steps"): dtype handling,
// scratch for the deterministic row sums, and launches of the kernels in backward.cu. Arguments are
// checked by ops.cpp; what the kernels need beyond that (sizes they support, shared memory) is
// checked here.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

namespace {

// A contiguous F32 device copy of a small parameter tensor (or undefined for undefined).
Tensor f32(const Tensor& t) {
  if (!t.defined()) return t;
  elem_of(t);
  return t.to(DType::F32).contiguous();
}

// The storage type for activations that one kernel reads together: theirs when they agree, else F32
// (the inputs are converted; results go back to each input's own dtype).
DType shared_dtype(std::initializer_list<const Tensor*> ts) {
  const DType first = (*ts.begin())->dtype();
  for (const Tensor* t : ts) {
    elem_of(*t);
    if (t->dtype() != first) return DType::F32;
  }
  return first;
}

Tensor scratch(int64_t n) { return Tensor::empty({n > 0 ? n : 1}, DType::F32, Device::cuda()); }

void check_shared(size_t need, const char* op, int64_t d) {
  const size_t limit = launch::max_shared_bytes_per_block();
  NT_CHECK(limit == 0 || need <= limit,
           "{} on the GPU: rows of {} channels need {} bytes of shared memory, the device allows {} per block", op, d,
           need, limit);
}

// Runs the RMSNorm backward (z undefined) or the gated one. Returns {dx, dz, dweight}.
struct NormResult {
  Tensor dx, dz, dweight;
};
NormResult norm_backward(const Tensor& x_in, const Tensor& z_in, const Tensor& weight, const Tensor& dout_in,
                         int64_t group_size, float eps, const char* op) {
  const int64_t d = x_in.size(-1), rows = d ? x_in.numel() / d : 0;
  check_shared(launch::norm_backward_shared_bytes(d, group_size), op, d);
  const bool gated = z_in.defined();
  const DType t = gated ? shared_dtype({&x_in, &z_in, &dout_in}) : shared_dtype({&x_in, &dout_in});
  Tensor x = x_in.to(t).contiguous(), dout = dout_in.to(t).contiguous(), w = f32(weight);
  Tensor z = gated ? z_in.to(t).contiguous() : Tensor();
  NormResult r{Tensor::empty(x.shape(), t, x.device()), gated ? Tensor::empty(x.shape(), t, x.device()) : Tensor(),
               Tensor::empty({d}, DType::F32, x.device())};
  Tensor partial = scratch(launch::norm_backward_partial_rows(rows) * d);
  launch::NormBackwardArgs a{elem_of(x),
                             x.raw_data(),
                             gated ? z.raw_data() : nullptr,
                             dout.raw_data(),
                             w.data<float>(),
                             r.dx.raw_data(),
                             gated ? r.dz.raw_data() : nullptr,
                             r.dweight.data<float>(),
                             partial.data<float>(),
                             rows,
                             d,
                             group_size,
                             eps};
  NT_CUDA_CHECK(launch::norm_backward(a, current_stream()));
  r.dx = r.dx.to(x_in.dtype());
  if (gated) r.dz = r.dz.to(z_in.dtype());
  return r;
}

}  // namespace

ops::RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy) {
  NormResult r = norm_backward(x, Tensor(), weight, dy, x.size(-1), eps, "rms_norm_backward");
  return {r.dx, r.dweight};
}

ops::GatedNormGrads gated_rms_norm_backward(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size,
                                            float eps, const Tensor& dout) {
  NormResult r = norm_backward(y, z, weight, dout, group_size, eps, "gated_rms_norm_backward");
  return {r.dx, r.dz, r.dweight};
}

Tensor relu2_backward(const Tensor& x_in, const Tensor& dy_in) {
  const DType t = shared_dtype({&x_in, &dy_in});
  Tensor x = x_in.to(t).contiguous(), dy = dy_in.to(t).contiguous();
  Tensor dx = Tensor::empty(x.shape(), t, x.device());
  NT_CUDA_CHECK(launch::relu2_backward(elem_of(x), x.raw_data(), dy.raw_data(), dx.raw_data(), x.numel(), current_stream()));
  return dx.to(x_in.dtype());
}

ops::ConvGrads causal_conv1d_silu_backward(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in,
                                           const Tensor& dout_in) {
  const int64_t batch = x_in.size(0), seq = x_in.size(1), ch = x_in.size(2);
  Tensor w = f32(weight_in.dim() == 3 ? weight_in.reshape({weight_in.size(0), weight_in.size(2)}) : weight_in);
  const int64_t k = w.size(1);
  NT_CHECK(k >= 1 && k <= 4, "causal_conv1d backward on the GPU supports kernel widths 1 to 4, got {} ({})", k,
           weight_in.str());
  NT_CHECK(batch <= 65535, "causal_conv1d backward on the GPU takes at most 65535 sequences, got {}", batch);
  const DType t = shared_dtype({&x_in, &dout_in});
  Tensor x = x_in.to(t).contiguous(), dout = dout_in.to(t).contiguous(), bias = f32(bias_in);
  ops::ConvGrads g;
  g.dx = Tensor::empty(x.shape(), t, x.device());
  g.dweight = Tensor::empty(weight_in.shape(), DType::F32, x.device());
  if (bias.defined()) g.dbias = Tensor::empty({ch}, DType::F32, x.device());
  Tensor partial = scratch(launch::conv1d_backward_partial_rows(batch, seq) * ch * (k + 1));
  launch::Conv1dBackwardArgs a{elem_of(x),
                               x.raw_data(),
                               w.data<float>(),
                               bias.defined() ? bias.data<float>() : nullptr,
                               dout.raw_data(),
                               g.dx.raw_data(),
                               g.dweight.data<float>(),
                               bias.defined() ? g.dbias.data<float>() : nullptr,
                               partial.data<float>(),
                               batch,
                               seq,
                               ch,
                               k};
  NT_CUDA_CHECK(launch::conv1d_silu_backward(a, current_stream()));
  g.dx = g.dx.to(x_in.dtype());
  return g;
}

Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi) {
  Tensor raw = dt_raw.contiguous(), bias = f32(dt_bias);
  const int64_t nh = raw.size(2);
  Tensor out = Tensor::empty(raw.shape(), DType::F32, raw.device());
  NT_CUDA_CHECK(launch::discretize_dt(elem_of(raw), raw.raw_data(), bias.data<float>(), out.data<float>(),
                                      nh ? raw.numel() / nh : 0, nh, lo, hi, current_stream()));
  return out;
}

ops::DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi,
                                   const Tensor& ddt_in) {
  Tensor raw = dt_raw.contiguous(), bias = f32(dt_bias), ddt = ddt_in.contiguous();
  const int64_t nh = raw.size(2), rows = nh ? raw.numel() / nh : 0;
  ops::DtGrads g{Tensor::empty(raw.shape(), raw.dtype(), raw.device()), Tensor::empty({nh}, DType::F32, raw.device())};
  Tensor partial = scratch(launch::discretize_dt_backward_partial_rows(rows) * nh);
  launch::DtBackwardArgs a{elem_of(raw),        raw.raw_data(),        bias.data<float>(),   elem_of(ddt),
                           ddt.raw_data(),   g.d_raw.raw_data(),    g.d_bias.data<float>(), partial.data<float>(),
                           rows,             nh,                    lo,                   hi};
  NT_CUDA_CHECK(launch::discretize_dt_backward(a, current_stream()));
  return g;
}

Tensor cross_entropy_(Tensor& logits, const Tensor& labels_in, const Tensor& weights_in, float grad_scale) {
  const launch::Elem t = elem_of(logits);
  NT_CHECK(labels_in.device().is_cuda(), "cross_entropy_: labels must be on the GPU with the logits, got {}",
           labels_in.str());
  Tensor labels = labels_in.contiguous(), weights = f32(weights_in);
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  Tensor loss = Tensor::empty({rows}, DType::F32, logits.device());
  if (rows == 0) return loss;
  Tensor error_flag = Tensor::zeros({1}, DType::I32, logits.device());
  launch::CrossEntropyArgs a{t,
                             logits.raw_data(),
                             labels.raw_data(),
                             labels.dtype() == DType::I64,
                             weights.data<float>(),
                             loss.data<float>(),
                             rows,
                             vocab,
                             grad_scale,
                             error_flag.data<int32_t>()};
  NT_CUDA_CHECK(launch::cross_entropy(a, current_stream()));
  NT_CHECK(error_flag.to(Device::cpu()).item() == 0.0,
           "cross_entropy: a label of a row with nonzero weight is outside the vocabulary [0, {})", vocab);
  return loss;
}

}  // namespace nemotron::cuda
