#ifndef GAUNTLET_TRAINER_MODELS_TINY_CONFIGS_H_
#define GAUNTLET_TRAINER_MODELS_TINY_CONFIGS_H_

#include <string>

#include "common/model_config.h"

namespace gauntlet {

// The tiny named size, built in code (model_config_test covers ResolveModelConfig), for a test
// case: an arch, or "arch/variant" for a preset or mode of it (sqa/{sqa,ssqa,xsqa,xsmqa},
// matformer/{joint,sample}), or with worker layers (mixed/{worker,worker_attn}, looped/worker,
// matformer/{worker_joint,worker_sample}). Dropout 0.
ModelConfig TinyConfig(const std::string& name);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_TINY_CONFIGS_H_
