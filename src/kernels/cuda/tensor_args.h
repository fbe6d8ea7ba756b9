// What the cuda/*_ops.cpp wrappers share when they turn tensors into launcher arguments.
#pragma once
#include "core/tensor.h"
#include "kernels/cuda/launch.h"

namespace nemotron::cuda {

// The storage type of a CUDA tensor for the launchers: F32 or BF16. An error for other dtypes, for
// an undefined tensor, and for a tensor that is not on a GPU.
launch::Elem elem_of(const Tensor& t);

}  // namespace nemotron::cuda
