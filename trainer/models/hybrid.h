#ifndef GAUNTLET_TRAINER_MODELS_HYBRID_H_
#define GAUNTLET_TRAINER_MODELS_HYBRID_H_

#include <torch/torch.h>

#include <cstdint>

#include "common/model_config.h"
#include "trainer/models/layers.h"
#include "trainer/models/trunk.h"

namespace gauntlet {

// A layer whose token-mixing sub-layer is replaced by a per-token "static" MLP
// (docs/ARCHITECTURES.md): x + Drop(W_b GELU(W_a RMSNorm_1(x) + b_a) + b_b), hidden width
// static_mlp_ratio * d; the FFN sub-layer is kept. No cross-token mixing, so trivially causal.
// Parameters: norm1.weight, static_mlp_{a,b}.{weight,bias}, norm2.weight, ffn.*.
class StaticMlpBlockImpl : public torch::nn::Module {
 public:
  StaticMlpBlockImpl(int64_t d_model, int64_t ratio, int64_t d_ff, double dropout);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double dropout_;
  RmsNorm norm1_{nullptr};
  torch::nn::Linear fc_a_{nullptr};
  torch::nn::Linear fc_b_{nullptr};
  RmsNorm norm2_{nullptr};
  GeluFfn ffn_{nullptr};
};
TORCH_MODULE(StaticMlpBlock);

// arch "hybrid": the trunk whose layer i is a standard attention block where
// hybrid_attention_layers[i] is true and a StaticMlpBlock elsewhere (default from
// ResolveModelConfig: attention in the first half). Parameters as standard, with
// blocks.{i}.static_mlp_{a,b}.* in place of blocks.{i}.attn.* for MLP layers.
class HybridTransformer : public TrunkTransformer {
 public:
  explicit HybridTransformer(ModelConfig config);
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_HYBRID_H_
