#ifndef GAUNTLET_TRAINER_MODELS_STANDARD_H_
#define GAUNTLET_TRAINER_MODELS_STANDARD_H_

#include "common/model_config.h"
#include "trainer/models/trunk.h"

namespace gauntlet {

// arch "standard": the seed baseline (docs/ARCHITECTURES.md). The trunk with L pre-RMSNorm
// blocks of interleaved RoPE and gated causal attention plus a GELU FFN with biases. Trains on
// every position.
// Parameters: embed.weight, blocks.{i}.{norm1,attn.qkv,attn.gate,attn.out,norm2,ffn.fc1,ffn.fc2},
// norm_f.weight, head.weight.
class StandardTransformer : public TrunkTransformer {
 public:
  explicit StandardTransformer(ModelConfig config);
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_STANDARD_H_
