#include "common/trial_expansion.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_merge.h"
#include "common/spec_defaults.h"
#include "common/yaml_proto.h"
#include "google/protobuf/descriptor.h"
#include "yaml-cpp/yaml.h"

namespace gauntlet {
namespace {

// A sweep value is kept as YAML text. Scalar fields take it verbatim (so "3e-4" stays a string
// until parsed against the field's type); lists and messages read it as a YAML document.
absl::Status ApplySweepValue(const v1::SweepAxis& axis, int value_index, v1::TrialSpec* spec) {
  const std::string error_path = absl::StrCat("sweep.", axis.path(), "[", value_index, "]");
  absl::StatusOr<const google::protobuf::FieldDescriptor*> field = FindFieldByPath(
      *v1::TrialSpec::descriptor(), axis.path(), absl::StrCat("sweep.", axis.path()));
  if (!field.ok()) return field.status();
  const std::string& text = axis.values(value_index);
  YAML::Node value;
  if ((*field)->is_repeated() ||
      (*field)->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(error_path, ": not valid YAML (", e.msg, ")"));
    }
  } else {
    value = YAML::Node(text);
  }
  return SetFieldByPath(spec, axis.path(), value, YAML::Mark::null_mark(), error_path);
}

}  // namespace

std::vector<GridIndex> SweepGrid(const v1::ExperimentSpec& spec) {
  std::vector<GridIndex> grid = {GridIndex(spec.sweep_size(), 0)};
  for (int axis = 0; axis < spec.sweep_size(); ++axis) {
    std::vector<GridIndex> next;
    for (const GridIndex& point : grid) {
      for (int value = 0; value < spec.sweep(axis).values_size(); ++value) {
        GridIndex extended = point;
        extended[axis] = value;
        next.push_back(std::move(extended));
      }
    }
    grid = std::move(next);
  }
  return grid;
}

absl::StatusOr<v1::TrialSpec> ResolveTrialSpec(const v1::ExperimentSpec& spec, int variant_index,
                                               const GridIndex& grid, int64_t seed) {
  if (variant_index < 0 || variant_index >= spec.variants_size()) {
    return absl::InvalidArgumentError(absl::StrCat("variants: no variant ", variant_index));
  }
  if (static_cast<int>(grid.size()) != spec.sweep_size()) {
    return absl::InvalidArgumentError("sweep: grid point has the wrong number of axes");
  }
  v1::TrialSpec trial = spec.base();
  MergeOverrides(spec.variants(variant_index).overrides(), &trial);
  for (int axis = 0; axis < spec.sweep_size(); ++axis) {
    if (grid[axis] < 0 || grid[axis] >= spec.sweep(axis).values_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep.", spec.sweep(axis).path(), ": no value ", grid[axis]));
    }
    absl::Status status = ApplySweepValue(spec.sweep(axis), grid[axis], &trial);
    if (!status.ok()) return status;
  }
  trial.set_seed(seed);
  ApplyTrialDefaults(&trial);
  return trial;
}

absl::StatusOr<std::vector<ExpandedTrial>> ExpandTrials(const v1::ExperimentSpec& spec) {
  std::vector<ExpandedTrial> trials;
  const std::vector<GridIndex> grid = SweepGrid(spec);
  for (int v = 0; v < spec.variants_size(); ++v) {
    for (const GridIndex& point : grid) {
      std::map<std::string, std::string> grid_point;
      for (int axis = 0; axis < spec.sweep_size(); ++axis) {
        grid_point[spec.sweep(axis).path()] = spec.sweep(axis).values(point[axis]);
      }
      for (int64_t seed : spec.seeds()) {
        absl::StatusOr<v1::TrialSpec> resolved = ResolveTrialSpec(spec, v, point, seed);
        if (!resolved.ok()) return resolved.status();
        ExpandedTrial trial;
        trial.variant = spec.variants(v).name();
        trial.seed = seed;
        trial.grid_point = grid_point;
        trial.spec = *std::move(resolved);
        trials.push_back(std::move(trial));
      }
    }
  }
  return trials;
}

}  // namespace gauntlet
