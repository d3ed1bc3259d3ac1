#ifndef GAUNTLET_TRAINER_KERNELS_ELEMENTWISE_H_
#define GAUNTLET_TRAINER_KERNELS_ELEMENTWISE_H_

// Fused elementwise ops of the Transformer blocks, as differentiable ops. On a GPU in a CUDA
// build (fp32/bf16) they run the kernels of elementwise.cu; otherwise the ATen composites below,
// which define the semantics.

#include <torch/torch.h>

namespace gauntlet::kernels {

// stream + delta, added in float32 and returned in stream's dtype; delta has stream's shape and
// any floating dtype. Under bf16 autocast a bf16 branch joins the float32 residual stream in one
// vectorised pass (ATen's mixed-dtype add is a non-vectorised one); delta's gradient comes back
// in delta's dtype.
torch::Tensor ResidualAdd(const torch::Tensor& stream, const torch::Tensor& delta);
torch::Tensor ResidualAddReference(const torch::Tensor& stream, const torch::Tensor& delta);

// Attention's elementwise sigmoid output gate fused with the head merge:
// merge(context) * sigmoid(gate), where context is (B, H, T, Dh) as SDPA returns it (any
// strides) and gate is (B, T, H * Dh) of the same dtype; the result is (B, T, H * Dh). Forward
// and backward are one pass each, and no merged copy of context is made.
torch::Tensor SigmoidGatedMerge(const torch::Tensor& context, const torch::Tensor& gate);
torch::Tensor SigmoidGatedMergeReference(const torch::Tensor& context, const torch::Tensor& gate);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_ELEMENTWISE_H_
