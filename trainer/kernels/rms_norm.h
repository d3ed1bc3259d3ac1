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
//
// `out_dtype` (default: x's) is the dtype of the normalised output: the norm is computed in x's
// dtype and rounded once to it. A float32 stream under bf16 autocast asks for bf16, which is what
// the GEMM after the norm would cast it to anyway; the kernel writes it directly (half the
// bytes) and takes its gradient in bf16, so no cast pass runs in either direction.

#include <torch/torch.h>

#include <optional>

namespace gauntlet::kernels {

// x: (..., d); weight: (d). Returns rms_norm(x) * weight in out_dtype.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight,
                      std::optional<torch::ScalarType> out_dtype = std::nullopt);

struct AddRmsNormResult {
  torch::Tensor sum;     // x + delta, in x's dtype: the new residual stream
  torch::Tensor normed;  // RmsNorm(sum, weight, out_dtype)
};

// x, delta: (..., d) of one shape; weight: (d). The sum is taken in float32 and rounded to x's
// dtype, whatever delta's dtype (a bf16 branch joins a float32 stream without a cast pass); its
// gradient reaches delta in delta's dtype. Both outputs are differentiable.
AddRmsNormResult AddRmsNorm(const torch::Tensor& x, const torch::Tensor& delta,
                            const torch::Tensor& weight,
                            std::optional<torch::ScalarType> out_dtype = std::nullopt);

// The ATen composites (what runs on CPU); exposed for tests and benchmarks.
torch::Tensor RmsNormReference(const torch::Tensor& x, const torch::Tensor& weight,
                               std::optional<torch::ScalarType> out_dtype = std::nullopt);
AddRmsNormResult AddRmsNormReference(const torch::Tensor& x, const torch::Tensor& delta,
                                     const torch::Tensor& weight,
                                     std::optional<torch::ScalarType> out_dtype = std::nullopt);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_RMS_NORM_H_
