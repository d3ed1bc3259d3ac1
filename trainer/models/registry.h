#ifndef GAUNTLET_TRAINER_MODELS_REGISTRY_H_
#define GAUNTLET_TRAINER_MODELS_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "trainer/models/model.h"

namespace gauntlet {

// Builds the architecture named by config.arch (one of KnownArchs()) with PyTorch default
// initialisation drawn from the global torch RNG: seed it (torch::manual_seed) first for
// reproducible weights. InvalidArgument for an unknown arch (listing the known ones) or a config
// that ValidateModelConfig rejects.
absl::StatusOr<std::shared_ptr<LanguageModelImpl>> CreateModel(const ModelConfig& config);

// Names of the archs with a factory, in table order: must equal KnownArchs() (the torch-free
// half of each row, common/model_config.h); architectures_test checks it.
std::vector<std::string> ArchsWithFactories();

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_REGISTRY_H_
