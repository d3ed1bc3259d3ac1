#ifndef GAUNTLET_COMMON_SPEC_YAML_H_
#define GAUNTLET_COMMON_SPEC_YAML_H_

// Experiment and trial specs from YAML, in three phases: parse (unknown keys rejected), apply
// defaults (common/spec_defaults.h), validate cross-field rules (common/spec_validation.h).
// Every error is InvalidArgument naming the field with its 1-based line and column:
//   line 7, column 5: train.optimizer.lr: must be > 0 (got -1)
//   line 3, column 3: model.dmodel: unknown field (did you mean d_model?)
// Parse errors stop at the first (what follows a bad key is not known); validation reports every
// error found, one per line, each located.
//
// Experiment YAML layout (keys are the snake_case fields of proto/gauntlet/v1/spec.proto):
//
//   name: ci-tiny                  # ExperimentSpec.name: [a-z0-9][a-z0-9._-]*
//   description: ...               # free text
//   data: {...}                    # } these top-level keys are the TrialSpec fields and form
//   model: {...}                   # } ExperimentSpec.base, the spec every variant starts from:
//   train: {...}                   # } data, model, train, budget, eval, resources, checkpoint.
//   budget: {...}                  # } (seed and run_dir are per trial: use `seeds`; the worker
//   eval: {...}                    # }  sets run_dir.)
//   resources: {...}               # }
//   checkpoint: {...}              # }
//   variants:                      # at least one; each is `name` plus any TrialSpec keys, which
//     - name: standard             # override the base's (messages merge key by key, scalars and
//       model: {arch: standard}    # lists replace). A variant with no overrides is allowed.
//     - name: worker-k4
//       model: {arch: worker, worker: {interval: 4}}
//   baseline: standard             # variant speedups are measured against (default: the first)
//   seeds: [1, 2, 3]               # one trial per seed (default [0])
//   sweep:                         # map of TrialSpec field path -> list of values; the grid is
//     train.optimizer.lr: [3e-4, 1e-3]   # the cross product, applied after the variant overrides
//   max_restarts: 1                # restarts per trial after worker loss / gang failure
//   priority: 0                    # higher runs first
//
// A trial YAML (`trainer --spec trial.yaml`) is one TrialSpec: the keys data ... checkpoint plus
// seed and run_dir.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

// Parses, applies experiment-level defaults (seeds, max_restarts, baseline) and validates every
// variant x grid point as the trial it resolves to. `base` and `variants[].overrides` stay as
// written (defaults would hide what a variant inherits); common/trial_expansion.h gives each
// trial's fully resolved TrialSpec.
absl::StatusOr<v1::ExperimentSpec> ParseExperimentSpecYaml(std::string_view yaml);

// For `trainer --spec trial.yaml`: parses one TrialSpec, applies defaults, validates.
absl::StatusOr<v1::TrialSpec> ParseTrialSpecYaml(std::string_view yaml);

// Block-style YAML that ParseTrialSpecYaml reads back to an equal message.
std::string TrialSpecToYaml(const v1::TrialSpec& spec);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_SPEC_YAML_H_
