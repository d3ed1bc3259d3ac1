#ifndef GAUNTLET_SERVER_COMPARE_H_
#define GAUNTLET_SERVER_COMPARE_H_

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {

// What the comparison knows about one trial.
struct TrialResult {
  v1::Trial trial;
  // The trainer's final summary, when the trial reported one.
  std::optional<v1::TrainerSummary> summary;
  // The trial's val_loss points (fair protocol), any order.
  std::vector<v1::MetricPoint> val_curve;
};

// The fair comparison table. Trials are grouped by variant and sweep grid point (a group of a
// sweep is named "variant[path=value,...]"); only COMPLETED trials are counted in a group's
// statistics, every trial with a val curve gets a TrialCurve. Final values come from the summary
// when present, else from the trial's latest metrics. Standard deviations are sample (n-1) ones.
// INVALID_ARGUMENT names `baseline` or `wallclock_points[i]` when they are bad.
absl::StatusOr<v1::CompareExperimentResponse> CompareTrials(
    const v1::Experiment& experiment, const std::vector<TrialResult>& results,
    const v1::CompareExperimentRequest& request);

// Linear interpolation of a val curve (sorted by train_seconds) at `seconds`; nullopt outside it.
std::optional<double> InterpolateAt(const std::vector<v1::MetricPoint>& sorted_curve,
                                    double seconds);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_COMPARE_H_
