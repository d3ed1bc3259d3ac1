#ifndef GAUNTLET_SERVER_TRIAL_STATE_H_
#define GAUNTLET_SERVER_TRIAL_STATE_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {

// A submitted trial as it starts: PENDING, attempt 1, created `now`, waiting for the scheduler.
v1::Trial NewTrial(v1::Trial trial, absl::Time now);

// True when `from -> to` is in the single table of legal trial transitions.
bool IsLegalTransition(v1::TrialState from, v1::TrialState to);

// True for COMPLETED, FAILED and CANCELED.
bool IsTerminal(v1::TrialState state);

// Applies `to` to `trial`: checks the table (FAILED_PRECONDITION naming both states when illegal),
// sets the state, appends a TrialTransition and keeps the bookkeeping fields consistent
// (started/finished times, placement cleared when the trial goes back to PENDING or ends,
// attempt incremented on a restart from SCHEDULED/RUNNING back to PENDING).
// The only function that changes a trial's state.
absl::Status ApplyTransition(v1::Trial& trial, v1::TrialState to, absl::Time now,
                             const std::string& reason);

// False for exit codes a restart cannot fix (bad spec or data, non-finite loss, out of memory):
// the same spec and seed fail the same way again.
bool RetryableExit(int exit_code);
// "exit code 5 (TRAINER_EXIT_OUT_OF_MEMORY)", "killed by signal 9", ...
std::string ExitName(int exit_code);

// The spec an attempt that ran out of memory is retried with: half the micro-batch
// (train.batch_size) and twice train.grad_accum_steps, so an optimizer step sees the same
// sequences. False, leaving `spec` alone, unless train.oom_min_batch_size is set and the halved
// micro-batch stays a whole number >= it.
bool HalveMicroBatch(v1::TrialSpec& spec);

// The experiment's state derived from its trials (see ExperimentState in coordinator.proto),
// or from how many of its trials are in each state (kept incrementally by the lifecycle).
v1::ExperimentState DeriveExperimentState(const v1::Experiment& experiment);
v1::ExperimentState DeriveExperimentState(const std::map<v1::TrialState, int>& counts);

// The experiment as clients see it: its state and counts per trial state filled in; trial specs
// and the YAML, and the transitions, only when asked for.
v1::Experiment ExperimentView(const v1::Experiment& experiment, bool include_spec,
                              bool include_transitions);

// Lower-case names used in metrics labels and trial_counts: "pending", "running", ...
std::string TrialStateName(v1::TrialState state);
std::string ExperimentStateName(v1::ExperimentState state);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_TRIAL_STATE_H_
