// Backward passes of the building blocks every layer uses: linear maps, RMSNorm, ReLU², token
// cross-entropy through the output layer. Each is the hand-derived gradient of the forward in
// kernels/ops.h (DESIGN.md principle 2), fp32 on the CPU.
//
// Convention: a backward takes the forward's inputs (or what it saved) and dy = d(loss)/d(output),
// returns d(loss)/d(input), and ADDS parameter gradients into Param::grad (so micro-batches and
// shared parameters accumulate).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "model/param.h"

namespace nemotron::grad {

// A deterministic parallel sum over rows: `add(begin, end, acc)` adds the contributions of rows
// [begin, end) into acc (`width` doubles, zeroed). Rows go in fixed blocks whose partial sums are
// added in block order, so the result does not depend on the number of threads.
std::vector<double> sum_over_rows(int64_t rows, int64_t width,
                                  const std::function<void(int64_t begin, int64_t end, double* acc)>& add);

// y = x @ weight^T (+ bias), x [..., in], dy [..., out]. Adds dy^T x to weight.grad (and the sum of
// dy to bias.grad) and returns dy @ weight, shaped like x (undefined when !need_dx).
Tensor linear_backward(const Tensor& x, const Tensor& dy, Param& weight, Param* bias = nullptr, bool need_dx = true);

// y = weight * x * r, r = 1/sqrt(mean(x²) + eps) over the last dimension (ops::rms_norm):
//   dx = r·(w∘dy) − r³·x·mean(w∘dy∘x),   dweight = Σ_rows dy∘x·r.
struct RmsNormGrads {
  Tensor dx;       // like x
  Tensor dweight;  // [D]
};
RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy);

// y = relu(x)²:  dx = 2·relu(x)·dy.
Tensor relu2_backward(const Tensor& x, const Tensor& dy);

// Cross-entropy through the output layer, in row chunks so that the [rows, vocab] logits never
// exist all at once. h [N, H], lm_head [V, H], labels I64 [N], mask [N] (any values; 0 skips a row,
// whose label may then be anything).
// Returns sum_i mask[i]·CE(h_i @ lm_head^T, labels[i]), accumulated in double. When `dh` is given,
// adds grad_scale·mask[i]·(softmax − onehot(label)) pulled back through lm_head into *dh ([N, H],
// F32, allocated by the caller), and into lm_head_grad's grad when that is given.
// Labels of rows with a non-zero mask must be in [0, V).
double cross_entropy_rows(const Tensor& h, const Tensor& lm_head, const Tensor& labels, const std::vector<float>& mask,
                          double grad_scale = 0.0, Tensor* dh = nullptr, Param* lm_head_grad = nullptr);

}  // namespace nemotron::grad
