#include "server/controller.h"

#include <algorithm>
#include <iostream>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/yaml_proto.h"
#include "server/compare.h"
#include "server/experiment_queries.h"
#include "server/heartbeat_reconciler.h"
#include "server/metric_ingest.h"
#include "server/trial_state.h"

namespace gauntlet {
namespace {

double Unix(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

bool Live(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SCHEDULED || state == v1::TRIAL_STATE_RUNNING;
}

// At most the first 80 bytes of a value a client sent, for error messages.
std::string Quote(const std::string& value) { return Truncated(value, 80); }

}  // namespace

Controller::Controller(Store* store, CoordinatorMetrics* metrics, const Clock* clock,
                       SpecCompiler compiler, ControllerOptions options)
    : store_(store),
      metrics_(metrics),
      clock_(clock),
      compiler_(std::move(compiler)),
      options_(options),
      registry_(WorkerRegistryOptions{options.lease, options.unhealthy_after_failures,
                                      options.unhealthy_for}),
      lifecycle_(&store_, metrics, &registry_, &hub_) {}

absl::Status Controller::Recover() {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = lifecycle_.Recover(clock_->Now()); !status.ok()) return status;
  RefreshGauges(clock_->Now());
  return absl::OkStatus();
}

absl::StatusOr<v1::Experiment> Controller::Submit(const v1::SubmitExperimentRequest& request) {
  if (request.spec_yaml().empty()) {
    return absl::InvalidArgumentError("spec_yaml: required (the experiment spec as YAML text)");
  }
  absl::StatusOr<CompiledExperiment> compiled = compiler_(request.spec_yaml());
  if (!compiled.ok()) return compiled.status();
  if (compiled->trials.empty()) {
    return absl::InvalidArgumentError("variants: the spec expands to no trials");
  }

  v1::Experiment experiment;
  *experiment.mutable_spec() = std::move(compiled->spec);
  experiment.set_spec_yaml(request.spec_yaml());
  uint64_t ticket = 0;
  {
    absl::MutexLock lock(&mu_);
    const std::string& name = experiment.spec().name();
    if (std::string id; lifecycle_.NameTaken(name, &id)) {
      return absl::AlreadyExistsError(
          absl::StrCat("name: an experiment named '", name, "' already exists (", id, ")"));
    }
    const absl::Time now = clock_->Now();
    if (absl::Status fits = registry_.CheckFits(compiled->trials, now); !fits.ok()) return fits;
    experiment.set_created_unix_time(Unix(now));
    for (v1::Trial& trial : compiled->trials) {
      *experiment.add_trials() = NewTrial(std::move(trial), now);
    }
    if (request.dry_run()) {
      for (int i = 0; i < experiment.trials_size(); ++i) {
        experiment.mutable_trials(i)->set_id(absl::StrCat("-", i));
      }
      v1::Experiment view = ExperimentView(experiment, true, true);
      TrimToFirstPage(view, options_.max_trials_per_page);
      return view;
    }
    // The id and name are taken now; the (possibly large) write happens without the lock.
    lifecycle_.Reserve(experiment);
    ticket = store_.QueueCreate(experiment);
  }
  const absl::Status written = store_.Wait(ticket);
  absl::MutexLock lock(&mu_);
  if (!written.ok()) {
    lifecycle_.Unreserve(experiment);
    return written;
  }
  v1::Experiment view = ExperimentView(*lifecycle_.Commit(std::move(experiment)), true, true);
  Kick();
  // The reply stays small whatever the experiment's size: the rest is a GetExperiment away.
  TrimToFirstPage(view, options_.max_trials_per_page);
  return view;
}

absl::StatusOr<v1::Experiment> Controller::Get(const v1::GetExperimentRequest& request) {
  absl::MutexLock lock(&mu_);
  return GetExperimentPage(lifecycle_, request, options_.max_trials_per_page);
}

absl::StatusOr<v1::ListExperimentsResponse> Controller::List(
    const v1::ListExperimentsRequest& request) {
  absl::MutexLock lock(&mu_);
  return ListExperimentsPage(lifecycle_, request);
}

absl::StatusOr<v1::Experiment> Controller::Cancel(const v1::CancelExperimentRequest& request) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<v1::Experiment*> experiment = lifecycle_.Lookup(request.experiment());
  if (!experiment.ok()) return experiment.status();
  const v1::ExperimentState state = lifecycle_.State((*experiment)->id());
  if (state != v1::EXPERIMENT_STATE_PENDING && state != v1::EXPERIMENT_STATE_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("experiment ", (*experiment)->id(),
                                                      " already finished (",
                                                      ExperimentStateName(state), ")"));
  }
  const std::string reason =
      request.reason().empty() ? "canceled" : absl::StrCat("canceled: ", Quote(request.reason()));
  // Workers stop the running gangs at the heartbeat they are woken for.
  if (absl::Status status = lifecycle_.Cancel(**experiment, reason, clock_->Now(), &to_wake_);
      !status.ok()) {
    return status;
  }
  Kick();
  v1::GetExperimentRequest get;
  get.set_experiment((*experiment)->id());
  mu_.Unlock();
  absl::StatusOr<v1::Experiment> view = Get(get);
  mu_.Lock();
  return view;
}

absl::StatusOr<v1::CompareExperimentResponse> Controller::Compare(
    const v1::CompareExperimentRequest& request) {
  v1::Experiment experiment;
  std::vector<TrialResult> results;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<v1::Experiment*> found = lifecycle_.Lookup(request.experiment());
    if (!found.ok()) return found.status();
    experiment = **found;
    for (const v1::Trial& trial : experiment.trials()) {
      TrialResult& result = results.emplace_back();
      result.trial = trial;
      if (const v1::TrainerSummary* summary = lifecycle_.Summary(trial.id())) {
        result.summary = *summary;
      }
    }
  }
  // Curves come from the store outside the lock: they can be long.
  for (TrialResult& result : results) {
    absl::StatusOr<std::vector<v1::MetricPoint>> curve =
        store_.LoadMetrics(result.trial.id(), "val_loss");
    if (!curve.ok()) return curve.status();
    result.val_curve = *std::move(curve);
  }
  return CompareTrials(experiment, results, request);
}

absl::StatusOr<std::shared_ptr<WatchQueue>> Controller::Watch(
    const v1::WatchExperimentRequest& request, v1::Experiment* snapshot) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<v1::Experiment*> experiment = lifecycle_.Lookup(request.experiment());
  if (!experiment.ok()) return experiment.status();
  *snapshot = ExperimentView(**experiment, true, false);
  const v1::ExperimentState state = snapshot->state();
  if (state != v1::EXPERIMENT_STATE_PENDING && state != v1::EXPERIMENT_STATE_RUNNING) {
    return WatchHub::Ended(*snapshot, request.include_metrics());
  }
  return hub_.Add((*experiment)->id(), request.include_metrics());
}

absl::StatusOr<std::vector<StoredLogChunk>> Controller::ReadLogs(const std::string& trial_id,
                                                                 int rank, int64_t after_id) {
  if (absl::StatusOr<bool> known = TrialFinished(trial_id); !known.ok()) return known.status();
  return store_.ReadLogs(trial_id, rank, after_id);
}

absl::StatusOr<bool> Controller::TrialFinished(const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  const v1::Trial* trial = lifecycle_.FindTrial(trial_id);
  if (trial == nullptr) {
    return absl::NotFoundError(absl::StrCat("trial '", Quote(trial_id), "' not found"));
  }
  return IsTerminal(trial->state());
}

int64_t Controller::AwaitLogs(int64_t seen_version, absl::Duration timeout) {
  return hub_.AwaitLogs(seen_version, timeout);
}

absl::StatusOr<v1::HeartbeatResponse> Controller::Heartbeat(const v1::HeartbeatRequest& request) {
  // Stamped on arrival: time spent waiting for the lock is not the worker's silence.
  const absl::Time arrival = clock_->Now();
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  if (absl::Status status = ValidateInventory(request.inventory()); !status.ok()) return status;
  absl::StatusOr<v1::HeartbeatResponse> response;
  {
    absl::MutexLock lock(&mu_);
    if (registry_.Heartbeat(request.worker_id(), request.inventory(), arrival)) Kick();
    response = ReconcileHeartbeat(request, arrival, registry_, lifecycle_);
  }
  if (!response.ok()) return response;
  response->set_lease_seconds(absl::ToDoubleSeconds(options_.lease));
  response->set_interval_seconds(absl::ToDoubleSeconds(options_.heartbeat_interval));
  return response;
}

absl::Status Controller::ReportMetrics(const v1::ReportMetricsRequest& request,
                                       v1::ReportMetricsResponse* response) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  mu_.Lock();
  MetricBatch batch = CheckMetrics(request, lifecycle_);
  // Memory first, then the write is queued under the lock (so it lands before any later
  // transition of these trials) and waited for outside it: heartbeats and the control loop never
  // wait for SQLite on its account. The reply waits, so an acknowledged point is stored. If the
  // write fails the worker sends the points again; the latest values were already right.
  std::vector<v1::Trial> rows = ApplyMetrics(batch, lifecycle_);
  const uint64_t ticket =
      batch.accepted.empty() ? 0 : store_.QueueMetrics(batch.accepted, std::move(rows));
  mu_.Unlock();
  if (ticket != 0) {
    if (absl::Status status = store_.Wait(ticket); !status.ok()) return status;
  }
  ReportRejected(request, batch, response);
  // Gauges are set before the reply, so the next scrape already sees the point.
  PublishMetrics(batch, *metrics_, hub_);
  return absl::OkStatus();
}

absl::Status Controller::ReportTrialExit(const v1::ReportTrialExitRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  if (request.trial_id().empty()) return absl::InvalidArgumentError("trial_id: required");
  absl::MutexLock lock(&mu_);
  v1::Trial* trial = lifecycle_.FindTrial(request.trial_id());
  if (trial == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("trial_id: unknown trial '", Quote(request.trial_id()), "'"));
  }
  if (request.attempt() != trial->attempt()) return absl::OkStatus();  // a stale gang
  const absl::Time now = clock_->Now();
  // Stored before the exit is applied: whoever sees COMPLETED can read the summary.
  if (request.has_summary() && request.exit_code() == 0) {
    if (absl::Status s = lifecycle_.SaveSummary(trial->id(), request.summary()); !s.ok()) return s;
  }
  if (!Live(trial->state()) || SliceOf(trial->placement(), request.worker_id()) < 0) {
    return absl::OkStatus();
  }
  if (request.launch_failed()) registry_.RecordLaunchFailure(request.worker_id(), now);
  Kick();  // a requeued trial or freed devices: schedule now, not at the next tick
  return lifecycle_.HandleExit(*trial, request.worker_id(), request.exit_code(),
                               Quote(request.reason()), now);
}

absl::Status Controller::ReportLogs(const v1::ReportLogsRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status status = CheckLogs(request, lifecycle_); !status.ok()) return status;
  }
  if (request.chunks_size() == 0) return absl::OkStatus();
  std::vector<v1::LogChunk> chunks(request.chunks().begin(), request.chunks().end());
  if (absl::Status status = store_.AppendLogs(chunks); !status.ok()) return status;
  hub_.LogsAppended();
  return absl::OkStatus();
}

absl::Status Controller::Deregister(const v1::DeregisterRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  absl::MutexLock lock(&mu_);
  std::cerr << "coordinator: worker " << Quote(request.worker_id()) << " deregistered"
            << (request.reason().empty() ? "" : ": ") << Quote(request.reason()) << std::endl;
  registry_.Deregister(request.worker_id());
  Kick();
  return lifecycle_.LoseWorker(request.worker_id(),
                               absl::StrCat("worker ", request.worker_id(), " shut down"),
                               clock_->Now());
}

std::optional<Controller::Pass> Controller::StartPass(absl::Time now) {
  // Event-driven: a pass only when a trial became pending or capacity may have grown (plus a
  // slow safety net, e.g. for a worker whose unhealthy period ended).
  const bool new_pending = lifecycle_.TakeNewPending();
  const bool capacity = registry_.TakeCapacityChanged();
  if (!(new_pending || capacity || std::exchange(schedule_again_, false) ||
        now - last_schedule_ >= options_.schedule_every) ||
      lifecycle_.pending_count() == 0) {
    return std::nullopt;
  }
  last_schedule_ = now;
  // The short-cut: nothing free anywhere, so nothing to place, and every pending trial already
  // says why it waits.
  if (!new_pending && !registry_.HasFreeDevices(now)) return std::nullopt;
  return Pass{registry_.Snapshot(now), lifecycle_.Pending()};
}

void Controller::FinishPass(const ScheduleResult& result, absl::Time now) {
  // One write for the whole pass; if the store refuses it, nothing moved and the next tick
  // tries again.
  absl::StatusOr<std::vector<const v1::Trial*>> placed = lifecycle_.Place(result.placements, now);
  if (!placed.ok()) {
    schedule_again_ = true;
    std::cerr << "coordinator: cannot place " << result.placements.size()
              << " trial(s): " << placed.status() << std::endl;
    return;
  }
  // A placement that no longer held (its worker went away meanwhile) is decided again.
  if (placed->size() != result.placements.size()) schedule_again_ = true;
  for (const v1::Trial* trial : *placed) {
    for (const v1::PlacementSlice& slice : trial->placement().slices()) {
      to_wake_.push_back(slice.worker_id());
    }
  }
  for (const auto& [trial_id, why] : result.waiting) lifecycle_.SetWaiting(trial_id, why);
}

void Controller::Tick(absl::Time now) {
  std::vector<std::string> wake;
  std::vector<std::string> thin;
  std::optional<Pass> pass;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& worker_id : registry_.ExpireLeases(now)) {
      absl::Status status =
          lifecycle_.LoseWorker(worker_id, absl::StrCat("worker ", worker_id, " lost"), now);
      if (!status.ok()) {
        // The lease is re-checked next tick; the trials keep their state until the write
        // succeeds.
        registry_.Revive(worker_id);
        std::cerr << "coordinator: " << status << std::endl;
      }
    }
    pass = StartPass(now);
  }
  if (pass.has_value()) {
    // Decided without the lock (it can take tens of ms at 10,000 pending trials): heartbeats
    // and reports go on meanwhile; FinishPass keeps only what still holds.
    const absl::Time start = clock_->Now();
    const ScheduleResult result = Schedule(pass->cluster, std::move(pass->pending));
    metrics_->ObserveSchedulePass(absl::ToDoubleSeconds(clock_->Now() - start));
    absl::MutexLock lock(&mu_);
    FinishPass(result, now);
  }
  {
    absl::MutexLock lock(&mu_);
    for (const v1::Trial* trial :
         lifecycle_.TakeFinishedBefore(now - options_.finished_series_retention)) {
      metrics_->RemoveTrial(trial->experiment_id(), trial->id());
      if (options_.max_points_per_series > 0) thin.push_back(trial->id());
    }
    RefreshGauges(now);
    wake.swap(to_wake_);
  }
  std::sort(wake.begin(), wake.end());
  wake.erase(std::unique(wake.begin(), wake.end()), wake.end());
  wakeups_.Wake(wake);
  // Outside the lock: thinning a long curve is a large DELETE, and nothing waits for it.
  for (const std::string& trial_id : thin) {
    if (absl::Status s = store_.DownsampleMetrics(trial_id, options_.max_points_per_series);
        !s.ok()) {
      std::cerr << "coordinator: cannot thin the metrics of " << trial_id << ": " << s
                << std::endl;
    }
  }
}

void Controller::Kick() {
  absl::MutexLock lock(&kick_mu_);
  kicked_ = true;
}

void Controller::AwaitWork(absl::Duration timeout) {
  absl::MutexLock lock(&kick_mu_);
  clock_->AwaitWithTimeout(&kick_mu_, absl::Condition(&kicked_), timeout);
  kicked_ = false;
}

void Controller::RefreshGauges(absl::Time now) {
  metrics_->SetExperimentCounts(lifecycle_.ExperimentCounts());
  metrics_->SetTrialCounts(lifecycle_.TrialCounts());
  metrics_->SetQueueDepth(static_cast<int>(lifecycle_.pending_count()));
  const WorkerRegistry::Counts counts = registry_.GetCounts(now);
  metrics_->SetWorkerCounts(counts.alive, counts.lost);
  metrics_->SetDeviceCounts(counts.gpu_free, counts.gpu_busy, counts.cpu_free, counts.cpu_busy);
}

}  // namespace gauntlet
