#ifndef GAUNTLET_SERVER_TRIAL_LIFECYCLE_H_
#define GAUNTLET_SERVER_TRIAL_LIFECYCLE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/store.h"
#include "server/watch_hub.h"
#include "server/worker_registry.h"

namespace gauntlet {

// Experiments and their trials: lookup, the persisted transitions, restarts and exits. Keeps the
// derived state the control loop needs (pending trials, counts per state, running slices)
// incrementally, so nothing here rescans every trial ever submitted. Every transition is written
// to the Store before memory, the worker registry's bookings or watchers see it; a failed write
// leaves the state as it was. Not thread-safe: the Controller serializes calls.
class TrialLifecycle {
 public:
  TrialLifecycle(Store* store, CoordinatorMetrics* metrics, WorkerRegistry* registry,
                 WatchHub* hub);

  // Loads the persisted state; workers named by live placements are expected from `now`.
  absl::Status Recover(absl::Time now);

  // A new experiment in two halves, so the caller can write it to the store without holding its
  // lock: Reserve assigns its id (exp-<n>) and trial ids and takes its name; Commit indexes it
  // once the store accepted it; Unreserve gives the name back when the store refused it.
  void Reserve(v1::Experiment& experiment);
  const v1::Experiment* Commit(v1::Experiment experiment);
  void Unreserve(const v1::Experiment& experiment);
  // The one experiment lookup: an id, else a name (names never look like ids, see
  // spec_validation), NOT_FOUND naming what was asked for.
  absl::StatusOr<v1::Experiment*> Lookup(const std::string& id_or_name);
  bool NameTaken(const std::string& name, std::string* id) const;
  v1::Trial* FindTrial(const std::string& trial_id);
  const std::map<std::string, v1::Experiment>& experiments() const { return experiments_; }
  int64_t Sequence(const std::string& experiment_id) const { return sequence_.at(experiment_id); }

  // Persists, then applies, one transition (plus `mutate`, applied to the trial before saving).
  absl::Status Transition(v1::Trial& trial, v1::TrialState to, absl::Time now,
                          const std::string& reason,
                          const std::function<void(v1::Trial&)>& mutate = nullptr);
  // Moves every trial named to SCHEDULED on its placement, written in one transaction: all or
  // none. A pass decided outside the lock may be stale: trials no longer PENDING and placements
  // the registry can no longer book are skipped. Returns the trials placed.
  absl::StatusOr<std::vector<const v1::Trial*>> Place(
      const std::map<std::string, v1::Placement>& placements, absl::Time now);
  // A gang failed (exit_code != 0) or lost a worker (exit_code 0): back to PENDING if it is
  // retryable and restarts remain, else FAILED. With `next_spec` (a smaller micro-batch after
  // running out of memory) it is retried with that spec whatever max_restarts says: halving
  // bounds those retries.
  absl::Status RestartOrFail(v1::Trial& trial, absl::Time now, const std::string& reason,
                             bool retryable, int exit_code,
                             const v1::TrialSpec* next_spec = nullptr);
  // The gang's slice on `worker_id` exited (the one route an exit takes: ReportTrialExit).
  absl::Status HandleExit(v1::Trial& trial, const std::string& worker_id, int exit_code,
                          const std::string& reason, absl::Time now);
  // Cancels every unfinished trial of `experiment`; the workers of their placements are added
  // to `workers` (to be woken, so they stop the gangs now).
  absl::Status Cancel(v1::Experiment& experiment, const std::string& reason, absl::Time now,
                      std::vector<std::string>* workers);
  // Every live trial placed on `worker_id` goes back to PENDING (or FAILED).
  absl::Status LoseWorker(const std::string& worker_id, const std::string& why, absl::Time now);

  // A slice reported its gang running; true once every slice of the current attempt has.
  bool SliceRunning(const v1::Trial& trial, const std::string& worker_id);
  bool IsSliceRunning(const std::string& trial_id, const std::string& worker_id) const;

  absl::Status SaveSummary(const std::string& trial_id, const v1::TrainerSummary& summary);
  const v1::TrainerSummary* Summary(const std::string& trial_id) const;

  // Pending trials ready to place: not those waiting for the trial whose checkpoint they load
  // (InferenceSpec.checkpoint_variant) to complete.
  std::vector<PendingTrial> Pending() const;
  // Fails pending trials whose checkpoint's trial ended without completing, and says on the
  // others that wait for one what they wait for.
  absl::Status ResolveCheckpointWaits(absl::Time now);
  size_t pending_count() const { return pending_.size(); }
  void SetWaiting(const std::string& trial_id, const std::string& why);
  // True (once) when a trial became PENDING since the last call: a reason to schedule.
  bool TakeNewPending();

  std::map<std::string, int> TrialCounts() const;
  std::map<std::string, int> ExperimentCounts() const;
  v1::ExperimentState State(const std::string& experiment_id) const {
    return experiment_states_.at(experiment_id);
  }
  // Trials that ended at or before `cutoff` (or were already over when the coordinator
  // started), each returned once: their Prometheus series age out and their stored points are
  // thinned.
  std::vector<const v1::Trial*> TakeFinishedBefore(absl::Time cutoff);

 private:
  struct TrialRef {
    std::string experiment_id;
    int index = 0;
  };
  int MaxRestarts(const v1::Trial& trial) const;
  // Writes every changed trial in one transaction, then applies each; all or none.
  absl::StatusOr<std::vector<const v1::Trial*>> WriteAndApply(
      std::vector<std::pair<v1::Trial*, v1::Trial>>& next, absl::Time now);
  void Index(const v1::Experiment& experiment);
  void UpdateExperimentState(const v1::Experiment& experiment, absl::Time now);
  // The in-memory half of a transition the store accepted: `next` replaces `trial` and every
  // derived index (counts, pending, bookings, experiment state, watchers) follows.
  void Apply(v1::Trial& trial, v1::Trial next, absl::Time now);
  PendingTrial ToPending(const v1::Trial& trial) const;

  Store* const store_;
  CoordinatorMetrics* const metrics_;
  WorkerRegistry* const registry_;
  WatchHub* const hub_;

  std::map<std::string, v1::Experiment> experiments_;
  // Submission order: experiment id -> sequence number (the n of "exp-<n>").
  std::map<std::string, int64_t> sequence_;
  std::map<std::string, std::string> id_by_name_;
  std::map<std::string, TrialRef> trials_;
  int64_t next_sequence_ = 1;
  std::map<std::string, v1::TrainerSummary> summaries_;
  // trial id -> workers whose slice reported the current attempt RUNNING.
  std::map<std::string, std::set<std::string>> running_slices_;
  std::map<std::string, PendingTrial> pending_;
  bool new_pending_ = false;
  // Trial id -> the trial of the same experiment whose checkpoint it loads and must wait for.
  std::map<std::string, std::string> waits_for_;
  std::map<v1::TrialState, int> trial_counts_;
  // Per experiment: trials in each state (its state is derived from these, not from a rescan).
  std::map<std::string, std::map<v1::TrialState, int>> experiment_trial_counts_;
  std::map<std::string, v1::ExperimentState> experiment_states_;
  std::deque<std::pair<absl::Time, std::string>> finished_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_TRIAL_LIFECYCLE_H_
