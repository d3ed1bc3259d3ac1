#ifndef GAUNTLET_TRAINER_KERNELS_RMS_NORM_H_
#define GAUNTLET_TRAINER_KERNELS_RMS_NORM_H_

// RMSNorm over the last axis with a learnable scale, and the fused residual-add + RMSNorm, as
// differentiable ops. On a GPU in a CUDA build (fp32/bf16) they run the kernels of rms_norm.cu;
// otherwise the ATen composite below, which has the same semantics.
//
// Semantics match trainer/models RmsNormImpl exactly: the weight is cast to the input's dtype
// (autograd casts its gradient back), and eps is the one at::rms_norm uses when unset: the
// machine epsilon of the *accumulation* type (FLT_EPSILON for fp32 and bf16, DBL_EPSILON for
// fp64), not bf16's own epsilon.

#include <torch/torch.h>

namespace gauntlet::kernels {

// x: (..., d); weight: (d). Returns rms_norm(x) * weight in x's dtype.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight);

struct AddRmsNormResult {
  torch::Tensor sum;     // x + delta, in x's dtype: the new residual stream
  torch::Tensor normed;  // RmsNorm(sum, weight)
};

// x, delta: (..., d) of one dtype and shape; weight: (d). Both outputs are differentiable.
AddRmsNormResult AddRmsNorm(const torch::Tensor& x, const torch::Tensor& delta,
                            const torch::Tensor& weight);

// The ATen composites (what runs on CPU); exposed for tests and benchmarks.
torch::Tensor RmsNormReference(const torch::Tensor& x, const torch::Tensor& weight);
AddRmsNormResult AddRmsNormReference(const torch::Tensor& x, const torch::Tensor& delta,
                                     const torch::Tensor& weight);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_RMS_NORM_H_
