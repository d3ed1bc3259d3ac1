#ifndef GAUNTLET_COMMON_TRIAL_EXPANSION_H_
#define GAUNTLET_COMMON_TRIAL_EXPANSION_H_

// An experiment becomes trials: variants x sweep grid points x seeds.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

struct ExpandedTrial {
  std::string variant;
  int64_t seed = 0;
  // Sweep axis path -> value (as written in the YAML); empty without a sweep.
  std::map<std::string, std::string> grid_point;
  // Fully resolved: base, then the variant's overrides, then the grid values, then seed, then
  // defaults (ApplyTrialDefaults). run_dir is left for the worker to set.
  v1::TrialSpec spec;
};

// One sweep grid point: value index per axis, in spec.sweep order.
using GridIndex = std::vector<int>;

// Every grid point of the sweep in row-major order (last axis fastest); one empty point without
// a sweep.
std::vector<GridIndex> SweepGrid(const v1::ExperimentSpec& spec);

// The resolved spec of variant `variant_index` at `grid` with `seed` (see ExpandedTrial::spec).
// Fails only when a sweep value does not parse to its field's type or a path does not exist.
absl::StatusOr<v1::TrialSpec> ResolveTrialSpec(const v1::ExperimentSpec& spec, int variant_index,
                                               const GridIndex& grid, int64_t seed);

// All trials, in deterministic order: variant (spec order), then grid point (row-major), then
// seed (spec order). Expects a validated spec (ParseExperimentSpecYaml's output); re-checks only
// what resolving needs.
absl::StatusOr<std::vector<ExpandedTrial>> ExpandTrials(const v1::ExperimentSpec& spec);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_TRIAL_EXPANSION_H_
