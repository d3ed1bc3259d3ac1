#ifndef GAUNTLET_TRAINER_KERNELS_LINEAR_CROSS_ENTROPY_H_
#define GAUNTLET_TRAINER_KERNELS_LINEAR_CROSS_ENTROPY_H_

// The LM head and its cross-entropy loss fused, as a differentiable op that never holds fp32
// logits for every row: rows go through in chunks; per chunk the logits are one GEMM in the
// hidden dtype (cuBLAS), one kernel (cross_entropy.cu) turns them in place into the loss
// gradient, and two more GEMMs give the chunk's hidden gradient and accumulate the weight
// gradient in fp32. The forward pass therefore computes the gradients (as Liger and llm.c do);
// backward only scales them by the incoming gradient. Without a GPU (or for other dtypes) the
// ATen composite runs instead, with the same semantics.

#include <torch/torch.h>

#include <cstdint>

namespace gauntlet::kernels {

struct LinearCrossEntropyOptions {
  // Rows per chunk; 0 picks chunks of about 256 MB of logits.
  int64_t chunk_rows = 0;
};

// hidden: (N, d) fp32 or bf16; weight: (V, d), any float dtype (cast to hidden's for the GEMMs;
// its gradient comes back in its own dtype, from an fp32 accumulator); targets: (N) int64 in
// [0, V); row_weights: (N) float32. Returns the 0-dim float32
//   sum_i row_weights[i] * cross_entropy(hidden[i] @ weight^T, targets[i]),
// differentiable w.r.t. hidden and weight. A row of weight 0 contributes nothing (its softmax
// is not even computed); to skip its GEMM work too, pass only the trained rows. The fused path
// reports a target outside [0, V) as a NaN loss rather than a host-side error (checking would
// need a host sync).
torch::Tensor LinearCrossEntropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                 const torch::Tensor& targets, const torch::Tensor& row_weights,
                                 const LinearCrossEntropyOptions& options = {});

// The ATen composite (what runs on CPU): fp32 logits for all rows, cross_entropy, weighted sum.
torch::Tensor LinearCrossEntropyReference(const torch::Tensor& hidden, const torch::Tensor& weight,
                                          const torch::Tensor& targets,
                                          const torch::Tensor& row_weights);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_LINEAR_CROSS_ENTROPY_H_
