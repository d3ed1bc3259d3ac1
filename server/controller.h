#ifndef GAUNTLET_SERVER_CONTROLLER_H_
#define GAUNTLET_SERVER_CONTROLLER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "gauntlet/v1/worker.pb.h"
#include "server/metrics.h"
#include "server/ordered_store.h"
#include "server/store.h"
#include "server/trial_lifecycle.h"
#include "server/watch_hub.h"
#include "server/watch_queue.h"
#include "server/worker_registry.h"
#include "server/worker_wakeups.h"

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
  int unhealthy_after_failures = 3;
  absl::Duration unhealthy_for = absl::Minutes(5);
  // A scheduling pass runs when something changed, and at least this often.
  absl::Duration schedule_every = absl::Seconds(5);
  // A finished trial's Prometheus series are dropped, and its stored points thinned, this long
  // after it ended.
  absl::Duration finished_series_retention = absl::Minutes(10);
  // GetExperiment returns at most this many trials per page.
  int max_trials_per_page = 1000;
  // When a finished trial's series age out, its stored metric points are thinned to this many
  // per metric name (0 keeps every point).
  int max_points_per_series = 1000;
};

// The coordinator's control plane behind one facade: RPC handlers call the request methods; a
// driver calls Tick(now) periodically (tests call it directly, so nothing here sleeps). The jobs
// live in parts: TrialLifecycle (experiments, trials, transitions), WorkerRegistry (leases,
// health, device bookings), WatchHub (watch streams), WorkerWakeups (the agents' wake-up
// streams), ReconcileHeartbeat, CheckMetrics and the experiment queries. One lock (mu_) guards
// the lifecycle and the registry. It is not held while a metric batch or a new experiment is
// written (the OrderedStore keeps writes in lock order) nor while a scheduling pass decides;
// transitions are still written under it.
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
  absl::Status Deregister(const v1::DeregisterRequest& request);

  // The agents' wake-up streams: WorkerService.WatchActions registers here.
  WorkerWakeups* wakeups() { return &wakeups_; }

  // One control-loop step: expires worker leases, places pending trials when something changed
  // and wakes the workers they were placed on, refreshes the gauges, ages out finished
  // experiments' series and thins their stored points.
  void Tick(absl::Time now);
  // For the driver: returns when something asks for a Tick now (a submit, an exit, a new
  // worker) or `timeout` passed.
  void AwaitWork(absl::Duration timeout);

 private:
  // A scheduling pass: its input is copied under the lock (StartPass, nothing when no pass is
  // due or nothing is free), decided without it, and applied under it again (FinishPass).
  struct Pass {
    ClusterSnapshot cluster;
    std::vector<PendingTrial> pending;
  };
  std::optional<Pass> StartPass(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishPass(const ScheduleResult& result, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshGauges(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks the driver for a Tick now.
  void Kick();

  OrderedStore store_;
  CoordinatorMetrics* const metrics_;
  const Clock* const clock_;
  const SpecCompiler compiler_;
  const ControllerOptions options_;

  absl::Mutex mu_;
  WorkerRegistry registry_ ABSL_GUARDED_BY(mu_);
  WatchHub hub_;
  TrialLifecycle lifecycle_ ABSL_GUARDED_BY(mu_);
  absl::Time last_schedule_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // A placement the store refused: the next tick tries again.
  bool schedule_again_ ABSL_GUARDED_BY(mu_) = false;
  // Workers with a new launch or stop, woken after the lock is released.
  std::vector<std::string> to_wake_ ABSL_GUARDED_BY(mu_);
  WorkerWakeups wakeups_;

  absl::Mutex kick_mu_;
  bool kicked_ ABSL_GUARDED_BY(kick_mu_) = false;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_CONTROLLER_H_
