#ifndef GAUNTLET_CLI_FORMAT_H_
#define GAUNTLET_CLI_FORMAT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"

namespace gauntlet::cli {

// `gauntlet compare`: one row per variant. `format` is table, markdown, csv or json.
absl::StatusOr<std::string> FormatCompare(const v1::CompareExperimentResponse& response,
                                          absl::string_view format);

// The curves of a compare response as the JSON cli/plot_curves.py reads.
std::string CurvesJson(const v1::CompareExperimentResponse& response);

// `gauntlet ls`.
std::string FormatExperimentList(const v1::ListExperimentsResponse& response);

// `gauntlet describe`: the experiment, then one row per trial with state, attempt, placement,
// latest metrics, and why it waits (or failed).
std::string FormatExperiment(const v1::Experiment& experiment);

// Short names for enums: "running", "completed".
std::string StateName(v1::TrialState state);
std::string StateName(v1::ExperimentState state);

// Human units: 6.4M, 230k, 6.1 GiB, 1m20s.
std::string HumanCount(double value);
std::string HumanBytes(double bytes);
std::string HumanDuration(double seconds);

// Progress of one trial for `gauntlet watch`, from its latest metrics and budget.
struct TrialProgress {
  int64_t step = 0;
  int64_t tokens = 0;
  double train_seconds = 0;
  std::map<std::string, double> latest;  // metric name -> latest value
};

// One line: id, variant, a bar, step, loss, tokens/s, ETA, state. `width` is the bar's width.
std::string FormatProgressLine(const v1::Trial& trial, const TrialProgress& progress,
                               int bar_width = 20);

}  // namespace gauntlet::cli

#endif  // GAUNTLET_CLI_FORMAT_H_
