#ifndef GAUNTLET_SERVER_SPEC_COMPILER_H_
#define GAUNTLET_SERVER_SPEC_COMPILER_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "server/controller.h"

namespace gauntlet {

// The production SpecCompiler: common/spec_yaml.h (parse, defaults, validate) then
// common/trial_expansion.h (variants x grid x seeds, each spec fully resolved).
absl::StatusOr<CompiledExperiment> CompileExperimentYaml(std::string_view yaml);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_SPEC_COMPILER_H_
