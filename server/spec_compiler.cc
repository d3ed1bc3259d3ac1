#include "server/spec_compiler.h"

#include <utility>

#include "common/spec_yaml.h"
#include "common/trial_expansion.h"

namespace gauntlet {

absl::StatusOr<CompiledExperiment> CompileExperimentYaml(std::string_view yaml) {
  absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(yaml);
  if (!spec.ok()) return spec.status();
  absl::StatusOr<std::vector<ExpandedTrial>> expanded = ExpandTrials(*spec);
  if (!expanded.ok()) return expanded.status();
  CompiledExperiment compiled;
  compiled.spec = *std::move(spec);
  for (ExpandedTrial& e : *expanded) {
    v1::Trial& trial = compiled.trials.emplace_back();
    trial.set_variant(e.variant);
    trial.set_seed(e.seed);
    trial.mutable_grid_point()->insert(e.grid_point.begin(), e.grid_point.end());
    *trial.mutable_spec() = std::move(e.spec);
  }
  return compiled;
}

}  // namespace gauntlet
