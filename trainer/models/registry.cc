#include "trainer/models/registry.h"

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "trainer/models/hybrid.h"
#include "trainer/models/sparse_depth.h"
#include "trainer/models/standard.h"
#include "trainer/models/worker.h"

namespace gauntlet {

absl::StatusOr<std::shared_ptr<LanguageModelImpl>> CreateModel(const ModelConfig& config) {
  absl::Status valid = ValidateModelConfig(config);
  if (!valid.ok()) return valid;
  if (config.arch == "standard") return std::make_shared<StandardTransformer>(config);
  if (config.arch == "worker") return std::make_shared<WorkerTransformer>(config);
  if (config.arch == "sparse_depth") return std::make_shared<SparseDepthTransformer>(config);
  if (config.arch == "hybrid") return std::make_shared<HybridTransformer>(config);
  // Reached only if KnownArchs() lists an arch that has no constructor here.
  return absl::InvalidArgumentError(absl::StrCat("model.arch: unknown architecture '", config.arch,
                                                 "'; known: ", absl::StrJoin(KnownArchs(), ", ")));
}

}  // namespace gauntlet
