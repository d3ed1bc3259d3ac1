#include "server/heartbeat_reconciler.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/trial_state.h"

namespace gauntlet {
namespace {

bool Live(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SCHEDULED || state == v1::TRIAL_STATE_RUNNING;
}

}  // namespace

absl::Status ValidateInventory(const v1::WorkerInventory& inventory) {
  std::set<int> seen;
  for (int i = 0; i < inventory.gpus_size(); ++i) {
    const int index = inventory.gpus(i).index();
    if (index < 0 || !seen.insert(index).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "inventory.gpus[", i, "].index: must be a unique non-negative ordinal, got ", index));
    }
  }
  if (inventory.cpu_slots() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("inventory.cpu_slots: must be >= 0, got ", inventory.cpu_slots()));
  }
  const int base = inventory.rendezvous_port_base();
  if (base < 1 || base + kRendezvousPortRange > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("inventory.rendezvous_port_base: must be in [1, ",
                     65536 - kRendezvousPortRange, "], got ", base));
  }
  if (inventory.address().empty() && inventory.hostname().empty()) {
    return absl::InvalidArgumentError("inventory.address: required (or inventory.hostname)");
  }
  return absl::OkStatus();
}

v1::LaunchTrial LaunchOf(const v1::Trial& trial, int slice) {
  v1::LaunchTrial launch;
  launch.set_trial_id(trial.id());
  launch.set_attempt(trial.attempt());
  *launch.mutable_spec() = trial.spec();
  *launch.mutable_placement() = trial.placement();
  launch.set_slice_index(slice);
  launch.set_world_size(trial.spec().resources().gpus_per_trial());
  return launch;
}

absl::StatusOr<v1::HeartbeatResponse> ReconcileHeartbeat(const v1::HeartbeatRequest& request,
                                                         absl::Time arrival,
                                                         WorkerRegistry& registry,
                                                         TrialLifecycle& lifecycle) {
  const std::string& worker_id = request.worker_id();
  v1::HeartbeatResponse response;
  std::set<std::pair<std::string, int>> reported;
  for (const v1::ProcessStatus& process : request.processes()) {
    reported.insert({process.trial_id(), process.attempt()});
    v1::Trial* trial = lifecycle.FindTrial(process.trial_id());
    const bool ours = trial != nullptr && Live(trial->state()) &&
                      trial->attempt() == process.attempt() &&
                      SliceOf(trial->placement(), worker_id) >= 0;
    if (!ours) {
      // Canceled, finished elsewhere, a stale attempt, or unknown after a restart: stop it.
      if (process.state() != v1::PROCESS_STATE_EXITED) {
        v1::StopTrial* stop = response.add_actions()->mutable_stop();
        stop->set_trial_id(process.trial_id());
        stop->set_attempt(process.attempt());
        stop->set_reason(trial == nullptr ? "unknown trial"
                         : trial->state() == v1::TRIAL_STATE_CANCELED
                             ? "trial canceled"
                             : absl::StrCat("not the trial's current attempt on this worker (",
                                            TrialStateName(trial->state()), ", attempt ",
                                            trial->attempt(), ")"));
      }
      continue;
    }
    // Exits are not acted on here: they arrive through ReportTrialExit, after the gang's last
    // metrics and logs, so nobody sees a finished trial with its final points missing.
    if (process.state() != v1::PROCESS_STATE_RUNNING) continue;
    registry.RecordLaunchSuccess(worker_id);
    const bool all_running = lifecycle.SliceRunning(*trial, worker_id);
    if (all_running && trial->state() == v1::TRIAL_STATE_SCHEDULED) {
      if (absl::Status status =
              lifecycle.Transition(*trial, v1::TRIAL_STATE_RUNNING, arrival, "all ranks running");
          !status.ok()) {
        return status;
      }
    }
  }
  // Launches are repeated until the worker reports the gang (workers dedupe on trial and
  // attempt), and a gang the worker once reported running but no longer lists is gone (its agent
  // restarted).
  for (const std::string& trial_id : registry.TrialsOn(worker_id)) {
    v1::Trial* trial = lifecycle.FindTrial(trial_id);
    if (trial == nullptr || reported.count({trial->id(), trial->attempt()})) continue;
    const int slice = SliceOf(trial->placement(), worker_id);
    const bool seen_running = lifecycle.IsSliceRunning(trial_id, worker_id);
    if (trial->state() == v1::TRIAL_STATE_SCHEDULED && !seen_running) {
      *response.add_actions()->mutable_launch() = LaunchOf(*trial, slice);
    } else if (seen_running || (trial->state() == v1::TRIAL_STATE_RUNNING && slice == 0)) {
      // Rank 0's slice of a RUNNING trial is listed until its exit was reported, even across a
      // coordinator restart; other slices may have finished cleanly, so only a slice this
      // process saw running counts.
      if (absl::Status status = lifecycle.RestartOrFail(
              *trial, arrival,
              absl::StrCat("worker ", worker_id, " no longer runs attempt ", trial->attempt(),
                           " (its agent restarted)"),
              /*retryable=*/true, 0);
          !status.ok()) {
        return status;
      }
    }
  }
  return response;
}

}  // namespace gauntlet
