#include "server/trial_state.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace gauntlet {
namespace {

using v1::TrialState;

// The legal transitions, exactly as documented on TrialState in coordinator.proto.
constexpr std::array<std::pair<TrialState, TrialState>, 11> kLegalTransitions = {{
    {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_SCHEDULED},
    {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_CANCELED},
    {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_FAILED},
    {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_RUNNING},
    {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_PENDING},
    {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_FAILED},
    {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_CANCELED},
    {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_COMPLETED},
    {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_FAILED},
    {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_CANCELED},
    {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_PENDING},
}};

double UnixSeconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

std::string EnumSuffix(absl::string_view full, absl::string_view prefix) {
  absl::string_view name = full;
  if (absl::StartsWith(name, prefix)) name.remove_prefix(prefix.size());
  return absl::AsciiStrToLower(name);
}

}  // namespace

bool IsLegalTransition(TrialState from, TrialState to) {
  for (const auto& [legal_from, legal_to] : kLegalTransitions) {
    if (legal_from == from && legal_to == to) return true;
  }
  return false;
}

bool IsTerminal(TrialState state) {
  return state == v1::TRIAL_STATE_COMPLETED || state == v1::TRIAL_STATE_FAILED ||
         state == v1::TRIAL_STATE_CANCELED;
}

absl::Status ApplyTransition(v1::Trial& trial, TrialState to, absl::Time now,
                             const std::string& reason) {
  const TrialState from = trial.state();
  if (!IsLegalTransition(from, to)) {
    return absl::FailedPreconditionError(absl::StrCat("trial ", trial.id(), ": illegal transition ",
                                                      TrialStateName(from), " -> ",
                                                      TrialStateName(to)));
  }
  v1::TrialTransition* transition = trial.add_transitions();
  transition->set_from(from);
  transition->set_to(to);
  transition->set_unix_time(UnixSeconds(now));
  transition->set_reason(reason);
  trial.set_state(to);
  switch (to) {
    case v1::TRIAL_STATE_PENDING:
      // Back to the queue: the next launch is a new attempt that resumes from the checkpoint.
      trial.clear_placement();
      trial.set_attempt(trial.attempt() + 1);
      trial.set_status_message(reason);
      break;
    case v1::TRIAL_STATE_SCHEDULED:
      trial.set_status_message("");
      break;
    case v1::TRIAL_STATE_RUNNING:
      if (trial.started_unix_time() == 0) trial.set_started_unix_time(UnixSeconds(now));
      break;
    default:  // Terminal states.
      trial.set_finished_unix_time(UnixSeconds(now));
      trial.set_status_message(reason);
      break;
  }
  return absl::OkStatus();
}

v1::ExperimentState DeriveExperimentState(const v1::Experiment& experiment) {
  std::map<v1::TrialState, int> counts;
  for (const v1::Trial& trial : experiment.trials()) ++counts[trial.state()];
  return DeriveExperimentState(counts);
}

v1::ExperimentState DeriveExperimentState(const std::map<v1::TrialState, int>& counts) {
  const auto any = [&](v1::TrialState state) {
    auto it = counts.find(state);
    return it != counts.end() && it->second > 0;
  };
  const bool any_active = any(v1::TRIAL_STATE_SCHEDULED) || any(v1::TRIAL_STATE_RUNNING);
  const bool any_pending = any(v1::TRIAL_STATE_PENDING);
  const bool any_canceled = any(v1::TRIAL_STATE_CANCELED);
  const bool any_failed = any(v1::TRIAL_STATE_FAILED);
  if (any_active) return v1::EXPERIMENT_STATE_RUNNING;
  if (any_pending) return v1::EXPERIMENT_STATE_PENDING;
  if (any_canceled) return v1::EXPERIMENT_STATE_CANCELED;
  if (any_failed) return v1::EXPERIMENT_STATE_FAILED;
  return v1::EXPERIMENT_STATE_COMPLETED;
}

std::string TrialStateName(TrialState state) {
  return EnumSuffix(v1::TrialState_Name(state), "TRIAL_STATE_");
}

std::string ExperimentStateName(v1::ExperimentState state) {
  return EnumSuffix(v1::ExperimentState_Name(state), "EXPERIMENT_STATE_");
}

bool HalveMicroBatch(v1::TrialSpec& spec) {
  v1::TrainSpec& train = *spec.mutable_train();
  const int batch = train.batch_size();
  if (!train.has_oom_min_batch_size() || batch % 2 != 0 ||
      batch / 2 < std::max(1, train.oom_min_batch_size()) ||
      train.grad_accum_steps() > (1 << 30)) {
    return false;
  }
  train.set_batch_size(batch / 2);
  train.set_grad_accum_steps(train.grad_accum_steps() * 2);
  return true;
}

bool RetryableExit(int exit_code) {
  switch (exit_code) {
    case v1::TRAINER_EXIT_BAD_SPEC:
    case v1::TRAINER_EXIT_BAD_DATA:
    case v1::TRAINER_EXIT_NON_FINITE:
    case v1::TRAINER_EXIT_OUT_OF_MEMORY:  // unless train.oom_min_batch_size allows a smaller batch
      return false;
    default:
      return true;
  }
}

std::string ExitName(int exit_code) {
  if (exit_code > 128) return absl::StrCat("killed by signal ", exit_code - 128);
  if (v1::TrainerExitCode_IsValid(exit_code)) {
    return absl::StrCat("exit code ", exit_code, " (",
                        v1::TrainerExitCode_Name(static_cast<v1::TrainerExitCode>(exit_code)), ")");
  }
  return absl::StrCat("exit code ", exit_code);
}

v1::Experiment ExperimentView(const v1::Experiment& experiment, bool include_spec,
                              bool include_transitions) {
  v1::Experiment view = experiment;
  view.set_state(DeriveExperimentState(experiment));
  auto& counts = *view.mutable_trial_counts();
  for (v1::Trial& trial : *view.mutable_trials()) {
    ++counts[TrialStateName(trial.state())];
    if (!include_spec) trial.clear_spec();
    if (!include_transitions) trial.clear_transitions();
  }
  if (!include_spec) view.clear_spec_yaml();
  return view;
}

v1::Trial NewTrial(v1::Trial trial, absl::Time now) {
  trial.set_state(v1::TRIAL_STATE_PENDING);
  trial.set_attempt(1);
  trial.set_created_unix_time(absl::ToDoubleSeconds(now - absl::UnixEpoch()));
  trial.set_status_message("waiting for the scheduler");
  return trial;
}

}  // namespace gauntlet
