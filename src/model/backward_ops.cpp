#include "model/backward_ops.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace nemotron::grad {

namespace {
Tensor f32(const Tensor& t) { return t.to(DType::F32).contiguous(); }
}  // namespace

std::vector<double> sum_over_rows(int64_t rows, int64_t width,
                                  const std::function<void(int64_t begin, int64_t end, double* acc)>& add) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  std::vector<double> partial(blocks * width, 0.0);
  parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) add(b * kBlock, std::min(rows, (b + 1) * kBlock), &partial[b * width]);
  });
  std::vector<double> total(width, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < width; ++i) total[i] += partial[b * width + i];
  return total;
}

Tensor linear_backward(const Tensor& x_in, const Tensor& dy_in, Param& weight, Param* bias, bool need_dx) {
  const int64_t in = x_in.size(-1), out = dy_in.size(-1);
  Tensor x = f32(x_in).reshape({-1, in}), dy = f32(dy_in).reshape({-1, out});
  NT_CHECK(x.size(0) == dy.size(0), "linear_backward: input {} and output gradient {} differ in rows", x_in.str(),
           dy_in.str());
  if (weight.requires_grad) weight.accumulate_grad(ops::matmul(dy, x, /*trans_a=*/true));
  if (bias && bias->requires_grad) bias->accumulate_grad(ops::sum(dy, 0));
  if (!need_dx) return Tensor();
  return ops::matmul(dy, weight.value).view(x_in.shape());
}

RmsNormGrads rms_norm_backward(const Tensor& x_in, const Tensor& w_in, float eps, const Tensor& dy_in) {
  const int64_t d = x_in.size(-1);
  NT_CHECK(w_in.shape() == Shape({d}) && dy_in.shape() == x_in.shape(),
           "rms_norm_backward: x {}, weight {} and dy {} do not match", x_in.str(), w_in.str(), dy_in.str());
  Tensor x = f32(x_in), w = f32(w_in), dy = f32(dy_in);
  const int64_t rows = x.numel() / d;
  Tensor dx = Tensor::empty(x.shape(), DType::F32);
  const float *px = x.data<float>(), *pw = w.data<float>(), *pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  std::vector<double> dw_sum = sum_over_rows(rows, d, [&](int64_t begin, int64_t end, double* dw) {
    for (int64_t r = begin; r < end; ++r) {
      const float *xr = px + r * d, *gr = pdy + r * d;
      double ss = 0.0, dot = 0.0;
      for (int64_t i = 0; i < d; ++i) {
        ss += double(xr[i]) * xr[i];
        dot += double(pw[i]) * gr[i] * xr[i];
      }
      const double inv = 1.0 / std::sqrt(ss / d + eps);
      const double c = inv * inv * inv * dot / d;
      for (int64_t i = 0; i < d; ++i) {
        pdx[r * d + i] = static_cast<float>(inv * pw[i] * gr[i] - c * xr[i]);
        dw[i] += double(gr[i]) * xr[i] * inv;
      }
    }
  });
  std::vector<float> dw(dw_sum.begin(), dw_sum.end());
  return {dx, Tensor::from_vector(dw, {d})};
}

Tensor relu2_backward(const Tensor& x_in, const Tensor& dy_in) {
  NT_CHECK(x_in.shape() == dy_in.shape(), "relu2_backward: x {} and dy {} differ", x_in.str(), dy_in.str());
  Tensor x = f32(x_in), dy = f32(dy_in);
  Tensor dx = Tensor::empty(x.shape(), DType::F32);
  const float *px = x.data<float>(), *pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  parallel_for(x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pdx[i] = px[i] > 0.0f ? 2.0f * px[i] * pdy[i] : 0.0f;
  });
  return dx;
}

double cross_entropy_rows(const Tensor& h_in, const Tensor& lm_head, const Tensor& labels_in,
                          const std::vector<float>& mask, double grad_scale, Tensor* dh, Param* lm_head_grad) {
  NT_CHECK(h_in.dim() == 2, "cross_entropy_rows: h must be [rows, hidden], got {}", h_in.str());
  const int64_t n = h_in.size(0), vocab = lm_head.size(0);
  NT_CHECK(labels_in.numel() == n && static_cast<int64_t>(mask.size()) == n,
           "cross_entropy_rows: {} rows but {} labels and {} mask values", n, labels_in.numel(), mask.size());
  NT_CHECK(!dh || (dh->shape() == h_in.shape() && dh->dtype() == DType::F32 && dh->is_contiguous()),
           "cross_entropy_rows: dh must be a contiguous F32 tensor like h {}", h_in.str());
  std::vector<int64_t> labels = labels_in.to_i64_vector();
  // Only rows that count take part; the others add nothing to the loss or the gradients.
  std::vector<int64_t> active;
  for (int64_t i = 0; i < n; ++i) {
    if (mask[i] == 0.0f) continue;
    NT_CHECK(labels[i] >= 0 && labels[i] < vocab, "label {} at row {} is outside the vocabulary [0, {})", labels[i],
             i, vocab);
    active.push_back(i);
  }
  if (active.empty()) return 0.0;
  NT_CHECK(h_in.size(1) == lm_head.size(1), "cross_entropy_rows: h {} does not match lm_head {}", h_in.str(),
           lm_head.str());
  Tensor h = f32(h_in);
  // At most ~16M logits (64 MB) per chunk.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 24) / vocab);
  double total = 0.0;
  for (size_t c0 = 0; c0 < active.size(); c0 += chunk) {
    const int64_t rows = std::min<int64_t>(chunk, active.size() - c0);
    std::vector<int64_t> idx(active.begin() + c0, active.begin() + c0 + rows);
    Tensor index = Tensor::from_vector(idx, {rows});
    Tensor hc = ops::index_select(h, index);                          // [rows, H]
    Tensor logits = ops::matmul(hc, lm_head, false, true);      // [rows, V], becomes d logits
    float* pl = logits.data<float>();
    std::vector<double> row_loss(rows);
    parallel_for(rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* l = pl + r * vocab;
        const int64_t i = idx[r];
        float mx = -INFINITY;
        for (int64_t v = 0; v < vocab; ++v) mx = std::max(mx, l[v]);
        const float label_logit = l[labels[i]];
        // The row becomes exp(l − max), summed in double.
        double z = 0.0;
        for (int64_t v = 0; v < vocab; ++v) z += l[v] = std::exp(l[v] - mx);
        row_loss[r] = mask[i] * (mx + std::log(z) - label_logit);
        if (!dh && !lm_head_grad) continue;
        // d logits = scale·mask·(softmax − onehot)
        const double g = grad_scale * mask[i];
        const float g_over_z = static_cast<float>(g / z);
        for (int64_t v = 0; v < vocab; ++v) l[v] *= g_over_z;
        l[labels[i]] -= static_cast<float>(g);
      }
    });
    for (double v : row_loss) total += v;
    if (lm_head_grad) lm_head_grad->accumulate_grad(ops::matmul(logits, hc, /*trans_a=*/true));
    if (dh) ops::index_add_(*dh, index, ops::matmul(logits, lm_head));
  }
  return total;
}

}  // namespace nemotron::grad
