#ifndef GAUNTLET_TRAINER_KERNELS_GELU_FFN_H_
#define GAUNTLET_TRAINER_KERNELS_GELU_FFN_H_

// The Transformer feed-forward block, fc2(gelu(fc1(x))) with biases and exact (erf) GELU, as one
// differentiable op. On a GPU in a CUDA build its backward computes the bias gradients as
// deterministic column sums, the first fused with GELU's backward, and the weight gradients
// straight into the parameters' dtype (float32 accumulation of bf16 products, no cast pass);
// otherwise it is the ATen composite below, which defines the semantics.

#include <torch/torch.h>

namespace gauntlet::kernels {

// x (..., d_model) in the GEMM dtype (bf16 under autocast); w1 (d_ff, d_model), b1 (d_ff),
// w2 (d_model, d_ff), b2 (d_model) in the parameters' dtype. Returns (..., d_model) in x's dtype.
torch::Tensor GeluFfn(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& b1,
                      const torch::Tensor& w2, const torch::Tensor& b2);
torch::Tensor GeluFfnReference(const torch::Tensor& x, const torch::Tensor& w1,
                               const torch::Tensor& b1, const torch::Tensor& w2,
                               const torch::Tensor& b2);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_GELU_FFN_H_
