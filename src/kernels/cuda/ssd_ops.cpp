// The chunked SSD and its backward on the GPU (kernels in ssd.cu): dtype handling, workspace and
// launches. x, B and C meet in the tensor-core products, so they run in one type: BF16 when all three
// are BF16, otherwise F32 (exact conversions). dt and the small parameters go as F32.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"

namespace nemotron::cuda {

namespace {

void check_on_device(const Tensor& t) {
  NT_CHECK(!t.defined() || t.device().is_cuda(), "CUDA kernel given {}", t.str());
  NT_CHECK(!t.defined() || t.dtype() == DType::F32 || t.dtype() == DType::BF16,
           "CUDA kernels take F32 or BF16 tensors, got {}", t.str());
}

Tensor f32(const Tensor& t) { return t.defined() ? t.to(DType::F32).contiguous() : t; }
const float* f32_ptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// The inputs in the kernels' types, the chunk the kernels use and the workspace both directions need.
struct Prepared {
  DType type;
  Tensor x, B, C, dt, A, D, init;
  int64_t batch, seq, heads, head_dim, groups, state, chunk, chunks;
  Tensor chunk_states, states_in, chunk_decay;
  launch::SsdChunkedArgs args{};
};

Prepared prepare(const ops::SsdInputs& in, int64_t chunk_size) {
  for (const Tensor* t : {&in.x, &in.dt, &in.A, &in.B, &in.C, &in.D, &in.initial_state}) check_on_device(*t);
  Prepared p;
  const bool bf16 = in.x.dtype() == DType::BF16 && in.B.dtype() == DType::BF16 && in.C.dtype() == DType::BF16;
  p.type = bf16 ? DType::BF16 : DType::F32;
  const launch::Elem et = bf16 ? launch::Elem::BF16 : launch::Elem::F32;
  p.x = in.x.to(p.type).contiguous();
  p.B = in.B.to(p.type).contiguous();
  p.C = in.C.to(p.type).contiguous();
  p.dt = f32(in.dt);
  p.A = f32(in.A);
  p.D = f32(in.D);
  p.init = f32(in.initial_state);
  p.batch = p.x.size(0);
  p.seq = p.x.size(1);
  p.heads = p.x.size(2);
  p.head_dim = p.x.size(3);
  p.groups = p.B.size(2);
  p.state = p.B.size(3);
  // Any chunk gives the same function; longer than the kernels' tile is cut to the tile.
  p.chunk = std::min(chunk_size, launch::ssd_chunk_limit(et));
  p.chunks = (p.seq + p.chunk - 1) / p.chunk;
  const Device dev = p.x.device();
  const Shape per_chunk = {p.batch, p.chunks, p.heads, p.head_dim, p.state};
  p.chunk_states = Tensor::empty(per_chunk, DType::F32, dev);
  p.states_in = Tensor::empty(per_chunk, p.type, dev);
  p.chunk_decay = Tensor::empty({p.batch, p.chunks, p.heads}, DType::F32, dev);

  launch::SsdChunkedArgs& a = p.args;
  a.type = et;
  a.x = p.x.raw_data();
  a.B = p.B.raw_data();
  a.C = p.C.raw_data();
  a.dt = p.dt.data<float>();
  a.A = p.A.data<float>();
  a.D = f32_ptr(p.D);
  a.initial_state = f32_ptr(p.init);
  a.batch = p.batch;
  a.seq = p.seq;
  a.heads = p.heads;
  a.head_dim = p.head_dim;
  a.groups = p.groups;
  a.state = p.state;
  a.chunk = p.chunk;
  a.chunk_states = p.chunk_states.data<float>();
  a.states_in = p.states_in.raw_data();
  a.chunk_decay = p.chunk_decay.data<float>();
  return p;
}

}  // namespace

bool ssd_chunked_supported(const ops::SsdInputs& in) {
  return in.x.size(3) <= launch::kSsdMaxHeadDim && in.B.size(3) <= launch::kSsdMaxState;
}

ops::SsdOutputs ssd_chunked(const ops::SsdInputs& in, int64_t chunk_size) {
  NT_CHECK(chunk_size >= 1, "ssd: chunk_size must be at least 1, got {}", chunk_size);
  NT_CHECK(ssd_chunked_supported(in), "ssd on the GPU: the chunked kernels take head_dim <= {} and state <= {}, got {}",
           launch::kSsdMaxHeadDim, launch::kSsdMaxState, in.B.str());
  Prepared p = prepare(in, chunk_size);
  const Device dev = p.x.device();
  ops::SsdOutputs r{Tensor::empty(p.x.shape(), p.type, dev),
                    Tensor::empty({p.batch, p.heads, p.head_dim, p.state}, DType::F32, dev)};
  if (p.seq == 0) {
    r.final_state = p.init.defined() ? p.init.clone() : Tensor::zeros(r.final_state.shape(), DType::F32, dev);
  } else {
    p.args.y = r.y.raw_data();
    p.args.final_state = r.final_state.data<float>();
    NT_CUDA_CHECK(launch::ssd_chunked_forward(p.args, current_stream()));
  }
  if (r.y.dtype() != in.x.dtype()) r.y = r.y.to(in.x.dtype());
  return r;
}

ops::SsdGrads ssd_scan_backward(const ops::SsdInputs& in, const Tensor& dy_in, int64_t chunk_size) {
  check_on_device(dy_in);
  NT_CHECK(ssd_chunked_supported(in),
           "ssd backward on the GPU takes head_dim <= {} and state <= {} (the chunked kernels), got x {} and B {}",
           launch::kSsdMaxHeadDim, launch::kSsdMaxState, in.x.str(), in.B.str());
  Prepared p = prepare(in, chunk_size);
  const Device dev = p.x.device();
  Tensor dy = dy_in.to(p.type).contiguous();
  ops::SsdGrads g;
  g.dx = Tensor::empty(p.x.shape(), p.type, dev);
  g.ddt = Tensor::empty(p.dt.shape(), DType::F32, dev);
  g.dB = Tensor::empty(p.B.shape(), p.type, dev);
  g.dC = Tensor::empty(p.C.shape(), p.type, dev);
  g.dA = Tensor::zeros({p.heads}, DType::F32, dev);
  g.dD = Tensor::zeros({p.heads}, DType::F32, dev);
  g.d_initial_state = Tensor::zeros({p.batch, p.heads, p.head_dim, p.state}, DType::F32, dev);
  if (p.seq > 0 && p.batch > 0) {
    const Shape per_chunk = {p.batch, p.chunks, p.heads, p.head_dim, p.state};
    Tensor dchunk_states = Tensor::empty(per_chunk, DType::F32, dev);
    Tensor dstates_out = Tensor::empty(per_chunk, p.type, dev);
    Tensor dA_part = Tensor::empty({p.batch, p.chunks, p.heads}, DType::F32, dev);
    Tensor dD_part = Tensor::empty({p.batch, p.chunks, p.heads}, DType::F32, dev);
    launch::SsdChunkedArgs& a = p.args;
    a.dy = dy.raw_data();
    a.dx = g.dx.raw_data();
    a.dB = g.dB.raw_data();
    a.dC = g.dC.raw_data();
    a.ddt = g.ddt.data<float>();
    a.dA = g.dA.data<float>();
    a.dD = g.dD.data<float>();
    a.d_initial_state = g.d_initial_state.data<float>();
    a.dchunk_states = dchunk_states.data<float>();
    a.dstates_out = dstates_out.raw_data();
    a.dA_part = dA_part.data<float>();
    a.dD_part = dD_part.data<float>();
    NT_CUDA_CHECK(launch::ssd_chunked_backward(a, current_stream()));
  } else {
    g.dx.zero_();
    g.ddt.zero_();
    g.dB.zero_();
    g.dC.zero_();
  }
  // dx-like results in the dtypes of the forward's inputs.
  if (g.dx.dtype() != in.x.dtype()) g.dx = g.dx.to(in.x.dtype());
  if (g.dB.dtype() != in.B.dtype()) g.dB = g.dB.to(in.B.dtype());
  if (g.dC.dtype() != in.C.dtype()) g.dC = g.dC.to(in.C.dtype());
  if (g.ddt.dtype() != in.dt.dtype()) g.ddt = g.ddt.to(in.dt.dtype());
  return g;
}

}  // namespace nemotron::cuda
