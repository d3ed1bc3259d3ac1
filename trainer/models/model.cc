#include "trainer/models/model.h"

#include <torch/torch.h>

namespace gauntlet {

torch::Tensor LanguageModelImpl::TrainPositions(int64_t seq_len, int64_t phase) const {
  return torch::ones({seq_len}, torch::kBool);
}

int64_t LanguageModelImpl::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

torch::Tensor MaskedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                 const torch::Tensor& mask) {
  const int64_t batch = logits.size(0);
  const int64_t seq_len = logits.size(1);
  const int64_t vocab = logits.size(2);
  TORCH_CHECK(targets.sizes() == torch::IntArrayRef({batch, seq_len}),
              "MaskedCrossEntropy: targets must be (B, T) = (", batch, ", ", seq_len, "), got ",
              targets.sizes());
  TORCH_CHECK(mask.dim() == 1 && mask.size(0) == seq_len,
              "MaskedCrossEntropy: mask must be (T,) = (", seq_len, "), got ", mask.sizes());
  // Weighting per-position losses (instead of boolean indexing) keeps shapes static: no host sync.
  const torch::Tensor per_position =
      torch::nn::functional::cross_entropy(
          logits.reshape({batch * seq_len, vocab}).to(torch::kFloat32), targets.reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
          .view({batch, seq_len});
  const torch::Tensor weights = mask.to(per_position.device(), torch::kFloat32);
  return (per_position * weights).sum() / (weights.sum() * batch);
}

}  // namespace gauntlet
