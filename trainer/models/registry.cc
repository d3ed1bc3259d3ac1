#include "trainer/models/registry.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "trainer/models/hybrid.h"
#include "trainer/models/layer_stack.h"
#include "trainer/models/sparse_depth.h"
#include "trainer/models/standard.h"
#include "trainer/models/worker.h"

namespace gauntlet {
namespace {

struct ArchFactory {
  const char* name;
  std::shared_ptr<LanguageModelImpl> (*create)(const ModelConfig& config);
};

template <typename Model>
std::shared_ptr<LanguageModelImpl> Make(const ModelConfig& config) {
  return std::make_shared<Model>(config);
}

// The torch half of the architecture table; the torch-free half (resolution, rules, FLOPs) is
// Archs() in common/model_config.cc, row for row.
constexpr ArchFactory kFactories[] = {
    {"standard", Make<StandardTransformer>},
    {"worker", Make<WorkerTransformer>},
    {"sparse_depth", Make<SparseDepthTransformer>},
    {"hybrid", Make<HybridTransformer>},
    // The layer-stack archs differ only in how their config is resolved (common/model_config.cc).
    {"sqa", Make<LayerStackTransformer>},
    {"mixed", Make<LayerStackTransformer>},
    {"looped", Make<LayerStackTransformer>},
    {"matformer", Make<LayerStackTransformer>},
    {"attn_drop", Make<LayerStackTransformer>},
};

}  // namespace

absl::StatusOr<std::shared_ptr<LanguageModelImpl>> CreateModel(const ModelConfig& config) {
  absl::Status valid = ValidateModelConfig(config);
  if (!valid.ok()) return valid;
  for (const ArchFactory& factory : kFactories) {
    if (config.arch == factory.name) return factory.create(config);
  }
  // Reached only if Archs() lists an arch that has no factory here (architectures_test catches it).
  return absl::InvalidArgumentError(
      absl::StrCat("model.arch: architecture '", config.arch,
                   "' has no factory; known: ", absl::StrJoin(ArchsWithFactories(), ", ")));
}

std::vector<std::string> ArchsWithFactories() {
  std::vector<std::string> names;
  for (const ArchFactory& factory : kFactories) names.push_back(factory.name);
  return names;
}

}  // namespace gauntlet
