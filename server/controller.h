#ifndef GAUNTLET_SERVER_CONTROLLER_H_
#define GAUNTLET_SERVER_CONTROLLER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "gauntlet/v1/worker.pb.h"
#include "server/clock.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/store.h"
#include "server/watch_queue.h"

namespace gauntlet {

// A parsed, validated experiment and its trials (variant, seed, grid_point and resolved spec set).
struct CompiledExperiment {
  v1::ExperimentSpec spec;
  std::vector<v1::Trial> trials;
};

// YAML text -> CompiledExperiment; INVALID_ARGUMENT naming field, line and column.
using SpecCompiler = std::function<absl::StatusOr<CompiledExperiment>(std::string_view yaml)>;

struct ControllerOptions {
  // A worker whose last heartbeat is older than this is lost.
  absl::Duration lease = absl::Seconds(15);
  // What heartbeat replies ask workers to use.
  absl::Duration heartbeat_interval = absl::Seconds(2);
};

// The coordinator's control plane: experiments, trials, the worker registry and the scheduling
// loop. RPC handlers call the request methods; a driver calls Tick(now) periodically (tests call
// it directly, so nothing here sleeps). Every trial transition is written to the Store before
// memory, metrics or watchers see it; a failed write leaves the state as it was.
class Controller {
 public:
  Controller(Store* store, CoordinatorMetrics* metrics, const Clock* clock, SpecCompiler compiler,
             ControllerOptions options);

  // Loads the persisted state. Workers referenced by live placements get a fresh lease from now:
  // if they heartbeat in time their trials are adopted, otherwise they are lost as usual.
  absl::Status Recover();

  // --- Coordinator API ---
  absl::StatusOr<v1::Experiment> Submit(const v1::SubmitExperimentRequest& request);
  absl::StatusOr<v1::Experiment> Get(const v1::GetExperimentRequest& request);
  absl::StatusOr<v1::ListExperimentsResponse> List(const v1::ListExperimentsRequest& request);
  absl::StatusOr<v1::Experiment> Cancel(const v1::CancelExperimentRequest& request);
  absl::StatusOr<v1::CompareExperimentResponse> Compare(
      const v1::CompareExperimentRequest& request);
  // Registers a watcher: `snapshot` is the experiment now; later events arrive on the queue.
  absl::StatusOr<std::shared_ptr<WatchQueue>> Watch(const v1::WatchExperimentRequest& request,
                                                    v1::Experiment* snapshot);
  // Log chunks of a trial after `after_id`; NOT_FOUND for an unknown trial.
  absl::StatusOr<std::vector<StoredLogChunk>> ReadLogs(const std::string& trial_id, int rank,
                                                       int64_t after_id);
  // Whether the trial has reached a terminal state (NOT_FOUND when unknown).
  absl::StatusOr<bool> TrialFinished(const std::string& trial_id);
  // Blocks until logs arrive after `seen_version` or `timeout` passes; returns the new version.
  int64_t AwaitLogs(int64_t seen_version, absl::Duration timeout);

  // --- WorkerService API ---
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  // Stores every valid point; invalid ones are listed in `response` (when given) and skipped.
  absl::Status ReportMetrics(const v1::ReportMetricsRequest& request,
                             v1::ReportMetricsResponse* response = nullptr);
  absl::Status ReportTrialExit(const v1::ReportTrialExitRequest& request);
  absl::Status ReportLogs(const v1::ReportLogsRequest& request);

  // One control-loop step: expires worker leases, then places pending trials.
  void Tick(absl::Time now);

 private:
  struct WorkerRecord {
    v1::WorkerInventory inventory;
    absl::Time last_heartbeat;
    bool alive = true;
    // False for placeholders made by Recover until the worker heartbeats.
    bool has_inventory = false;
  };
  struct TrialRef {
    std::string experiment_id;
    int index = 0;
  };

  v1::Trial* FindTrial(const std::string& trial_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Experiment* FindExperiment(const std::string& id_or_name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persists, then applies, one transition (plus `mutate`, applied to the trial before saving).
  absl::Status Transition(v1::Trial& trial, v1::TrialState to, absl::Time now,
                          const std::string& reason,
                          const std::function<void(v1::Trial&)>& mutate = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A gang failed (exit_code != 0) or lost a worker (exit_code 0): back to PENDING if it is
  // retryable and restarts remain, else FAILED.
  absl::Status RestartOrFail(v1::Trial& trial, absl::Time now, const std::string& reason,
                             bool retryable, int exit_code) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status HandleExit(v1::Trial& trial, const std::string& worker_id, int exit_code,
                          const std::string& reason, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a trial changed: watchers, and the experiment's end.
  void Publish(const v1::Trial& trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ClusterSnapshot Snapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Schedule(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeases(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The experiment as clients see it: derived state and counts filled in.
  v1::Experiment View(const v1::Experiment& experiment, bool include_spec,
                      bool include_transitions) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int MaxRestarts(const v1::Trial& trial) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store* const store_;
  CoordinatorMetrics* const metrics_;
  const Clock* const clock_;
  const SpecCompiler compiler_;
  const ControllerOptions options_;

  absl::Mutex mu_;
  std::map<std::string, v1::Experiment> experiments_ ABSL_GUARDED_BY(mu_);
  // Submission order: experiment id -> sequence number (the n of "exp-<n>").
  std::map<std::string, int64_t> sequence_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> id_by_name_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TrialRef> trials_ ABSL_GUARDED_BY(mu_);
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, WorkerRecord> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::TrainerSummary> summaries_ ABSL_GUARDED_BY(mu_);
  // trial id -> workers whose slice reported RUNNING for the current attempt.
  std::map<std::string, std::set<std::string>> running_slices_ ABSL_GUARDED_BY(mu_);
  // experiment id -> open watch streams.
  std::map<std::string, std::vector<std::weak_ptr<WatchQueue>>> watchers_ ABSL_GUARDED_BY(mu_);

  absl::Mutex logs_mu_;
  int64_t logs_version_ ABSL_GUARDED_BY(logs_mu_) = 0;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_CONTROLLER_H_
