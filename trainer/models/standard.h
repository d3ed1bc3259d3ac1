#ifndef GAUNTLET_TRAINER_MODELS_STANDARD_H_
#define GAUNTLET_TRAINER_MODELS_STANDARD_H_

#include <torch/torch.h>

#include <cstdint>

#include "trainer/models/layers.h"
#include "trainer/models/model.h"
#include "trainer/models/model_config.h"

namespace gauntlet {

// arch "standard": the seed baseline (architectures.md §1). Token embedding (no absolute
// positions), L pre-RMSNorm blocks with interleaved RoPE and gated causal attention plus a GELU
// FFN with biases, final RMSNorm, untied bias-free head. Trains on every position.
// Parameters: embed.weight, blocks.{i}.{norm1,attn.qkv,attn.gate,attn.out,norm2,ffn.fc1,ffn.fc2},
// norm_f.weight, head.weight.
class StandardTransformer : public LanguageModelImpl {
 public:
  explicit StandardTransformer(ModelConfig config);

  double TrainingFlopsPerToken(int64_t seq_len) const override;

 protected:
  ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head head) override;

 private:
  torch::nn::Embedding embed_{nullptr};
  RotaryTable rotary_{nullptr};
  torch::nn::ModuleList blocks_;
  RmsNorm norm_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_STANDARD_H_
