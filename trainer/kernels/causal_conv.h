#ifndef GAUNTLET_TRAINER_KERNELS_CAUSAL_CONV_H_
#define GAUNTLET_TRAINER_KERNELS_CAUSAL_CONV_H_

// Causal depthwise convolution along the sequence axis, as a differentiable op. On a GPU in a
// CUDA build (fp32/bf16 activations, width <= 8) it runs the kernels of causal_conv.cu;
// otherwise the ATen composite below, which defines the semantics.

#include <torch/torch.h>

namespace gauntlet::kernels {

// x: (B, T, d); weight: (d, 1, K) as torch::nn::Conv1d with groups = d stores it; bias: (d).
// out[b, t, c] = bias[c] + sum_j weight[c, 0, j] * x[b, t - (K - 1) + j, c], with zeros before
// position 0, in x's dtype (weight and bias are applied in float32).
torch::Tensor CausalConv(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias);
torch::Tensor CausalConvReference(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_CAUSAL_CONV_H_
