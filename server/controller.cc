#include "server/controller.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/compare.h"
#include "server/trial_state.h"

namespace gauntlet {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;
constexpr size_t kMaxPageBytes = 2 << 20;
// The metric point a worker forwards from TrainerStarted: the step an attempt resumed from.
constexpr char kResumedFromStep[] = "resumed_from_step";

double Unix(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

bool Live(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SCHEDULED || state == v1::TRIAL_STATE_RUNNING;
}

int SliceOf(const v1::Placement& placement, const std::string& worker_id) {
  for (int i = 0; i < placement.slices_size(); ++i) {
    if (placement.slices(i).worker_id() == worker_id) return i;
  }
  return -1;
}

// At most the first 80 bytes of a value a client sent, for error messages.
std::string Quote(const std::string& value) {
  return value.size() <= 80 ? value : absl::StrCat(value.substr(0, 80), "... (", value.size(),
                                                   " bytes)");
}

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
      lifecycle_(store, metrics, &registry_, &hub_) {}

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

  absl::MutexLock lock(&mu_);
  const std::string& name = compiled->spec.name();
  if (std::string id; lifecycle_.NameTaken(name, &id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("name: an experiment named '", name, "' already exists (", id, ")"));
  }
  const absl::Time now = clock_->Now();
  // A gang larger than the registered cluster could ever hold is refused now, not queued forever.
  const ClusterSnapshot cluster = registry_.Snapshot(now);
  if (!cluster.workers.empty()) {
    for (const v1::Trial& trial : compiled->trials) {
      const DeviceKind kind = ResolveDeviceKind(trial.spec().resources().device(), cluster);
      int largest = 0;
      for (const WorkerSnapshot& w : cluster.workers) {
        largest = std::max(largest, kind == DeviceKind::kGpu ? static_cast<int>(w.gpus.size())
                                                             : w.cpu_slots);
      }
      const auto& resources = trial.spec().resources();
      if (resources.gpus_per_trial() > resources.max_nodes() * largest) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resources.gpus_per_trial: variant '", trial.variant(), "' needs ",
            resources.gpus_per_trial(), " ", kind == DeviceKind::kGpu ? "gpu" : "cpu",
            " devices but can get at most ", resources.max_nodes() * largest, " (max_nodes ",
            resources.max_nodes(), " x largest registered worker's ", largest, ")"));
      }
    }
  }

  v1::Experiment experiment;
  *experiment.mutable_spec() = compiled->spec;
  experiment.set_spec_yaml(request.spec_yaml());
  experiment.set_created_unix_time(Unix(now));
  for (v1::Trial& compiled_trial : compiled->trials) {
    v1::Trial& trial = *experiment.add_trials();
    trial = std::move(compiled_trial);
    trial.set_state(v1::TRIAL_STATE_PENDING);
    trial.set_attempt(1);
    trial.set_created_unix_time(Unix(now));
    trial.set_status_message("waiting for the scheduler");
  }
  v1::Experiment view;
  if (request.dry_run()) {
    for (int i = 0; i < experiment.trials_size(); ++i) {
      experiment.mutable_trials(i)->set_id(absl::StrCat("-", i));
    }
    view = lifecycle_.View(experiment, true, true);
  } else {
    absl::StatusOr<const v1::Experiment*> created = lifecycle_.Create(std::move(experiment));
    if (!created.ok()) return created.status();
    view = lifecycle_.View(**created, true, true);
  }
  // The reply stays small whatever the experiment's size: the rest is a GetExperiment away.
  int keep = 0;
  size_t bytes = view.spec_yaml().size() + view.spec().ByteSizeLong();
  while (keep < view.trials_size() && keep < options_.max_trials_per_page &&
         (keep == 0 || bytes + view.trials(keep).ByteSizeLong() <= kMaxPageBytes)) {
    bytes += view.trials(keep++).ByteSizeLong();
  }
  if (keep < view.trials_size()) {
    view.mutable_trials()->DeleteSubrange(keep, view.trials_size() - keep);
    view.set_next_trial_page_token(absl::StrCat(keep));
  }
  return view;
}

absl::StatusOr<v1::Experiment> Controller::Get(const v1::GetExperimentRequest& request) {
  if (request.trial_page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial_page_size: must be >= 0, got ", request.trial_page_size()));
  }
  const int page_size = request.trial_page_size() == 0
                            ? options_.max_trials_per_page
                            : std::min(request.trial_page_size(), options_.max_trials_per_page);
  int first = 0;
  if (!request.trial_page_token().empty() &&
      (!absl::SimpleAtoi(request.trial_page_token(), &first) || first < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial_page_token: malformed '", Quote(request.trial_page_token()), "'"));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<v1::Experiment*> experiment = lifecycle_.Lookup(request.experiment());
  if (!experiment.ok()) return experiment.status();
  // Only the page is copied: a 10,000-trial experiment costs one page, not all of it.
  v1::Experiment page = **experiment;
  page.clear_trials();
  const auto& trials = (*experiment)->trials();
  // A page ends at page_size trials or kMaxPageBytes, whichever comes first (at least one
  // trial), so no response nears the client's 4 MB limit however large the trial specs are.
  int end = first;
  size_t bytes = 0;
  while (end < trials.size() && end < first + page_size &&
         (end == first || bytes + trials[end].ByteSizeLong() <= kMaxPageBytes)) {
    bytes += trials[end].ByteSizeLong();
    *page.add_trials() = trials[end++];
  }
  v1::Experiment view = lifecycle_.View(page, true, request.include_transitions());
  view.set_state(lifecycle_.State(page.id()));
  view.clear_trial_counts();
  for (const v1::Trial& trial : trials) ++(*view.mutable_trial_counts())[TrialStateName(trial.state())];
  if (end < trials.size()) view.set_next_trial_page_token(absl::StrCat(end));
  return view;
}

absl::StatusOr<v1::ListExperimentsResponse> Controller::List(
    const v1::ListExperimentsRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0, got ", request.page_size()));
  }
  const int page_size =
      request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  // The token is the sequence number of the last experiment returned; pages go newest first.
  int64_t before = INT64_MAX;
  if (!request.page_token().empty() &&
      (!absl::SimpleAtoi(request.page_token(), &before) || before <= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: malformed '", Quote(request.page_token()), "'"));
  }
  for (int i = 0; i < request.states_size(); ++i) {
    if (!v1::ExperimentState_IsValid(request.states(i)) ||
        request.states(i) == v1::EXPERIMENT_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("states[", i, "]: not an experiment state: ", request.states(i)));
    }
  }
  std::set<int> states(request.states().begin(), request.states().end());

  absl::MutexLock lock(&mu_);
  std::vector<std::pair<int64_t, const v1::Experiment*>> order;
  for (const auto& [id, experiment] : lifecycle_.experiments()) {
    const int64_t sequence = lifecycle_.Sequence(id);
    if (sequence >= before) continue;
    if (!absl::StartsWith(experiment.spec().name(), request.name_prefix())) continue;
    if (!states.empty() && !states.count(lifecycle_.State(id))) continue;
    order.push_back({sequence, &experiment});
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  v1::ListExperimentsResponse response;
  for (size_t i = 0; i < order.size() && i < static_cast<size_t>(page_size); ++i) {
    // Spec summary stays (name, variants...) but the YAML and trial specs are left out.
    *response.add_experiments() = lifecycle_.View(*order[i].second, false, false);
  }
  if (order.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(absl::StrCat(order[page_size - 1].first));
  }
  return response;
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
  const absl::Time now = clock_->Now();
  // Workers stop the running gangs at their next heartbeat: their trial is no longer live.
  for (v1::Trial& trial : *(*experiment)->mutable_trials()) {
    if (IsTerminal(trial.state())) continue;
    if (absl::Status status = lifecycle_.Transition(trial, v1::TRIAL_STATE_CANCELED, now, reason);
        !status.ok()) {
      return status;
    }
  }
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
        store_->LoadMetrics(result.trial.id(), "val_loss");
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
  *snapshot = lifecycle_.View(**experiment, true, false);
  const v1::ExperimentState state = snapshot->state();
  if (state != v1::EXPERIMENT_STATE_PENDING && state != v1::EXPERIMENT_STATE_RUNNING) {
    auto queue = std::make_shared<WatchQueue>(request.include_metrics());
    v1::WatchEvent end;
    *end.mutable_finished() = *snapshot;
    queue->Push(std::move(end));
    queue->Close();
    return queue;
  }
  return hub_.Add((*experiment)->id(), request.include_metrics());
}

absl::StatusOr<std::vector<StoredLogChunk>> Controller::ReadLogs(const std::string& trial_id,
                                                                 int rank, int64_t after_id) {
  {
    absl::MutexLock lock(&mu_);
    if (lifecycle_.FindTrial(trial_id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("trial '", Quote(trial_id), "' not found"));
    }
  }
  return store_->ReadLogs(trial_id, rank, after_id);
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
  absl::MutexLock lock(&logs_mu_);
  auto changed = [&]() ABSL_SHARED_LOCKS_REQUIRED(logs_mu_) {
    return logs_version_ != seen_version;
  };
  logs_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return logs_version_;
}

v1::LaunchTrial Controller::LaunchOf(const v1::Trial& trial, int slice) const {
  v1::LaunchTrial launch;
  launch.set_trial_id(trial.id());
  launch.set_attempt(trial.attempt());
  *launch.mutable_spec() = trial.spec();
  *launch.mutable_placement() = trial.placement();
  launch.set_slice_index(slice);
  launch.set_world_size(trial.spec().resources().gpus_per_trial());
  return launch;
}

absl::StatusOr<v1::HeartbeatResponse> Controller::Heartbeat(const v1::HeartbeatRequest& request) {
  // Stamped on arrival: time spent waiting for the lock is not the worker's silence.
  const absl::Time arrival = clock_->Now();
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  if (absl::Status status = ValidateInventory(request.inventory()); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  const std::string& worker_id = request.worker_id();
  registry_.Heartbeat(worker_id, request.inventory(), arrival);

  v1::HeartbeatResponse response;
  response.set_lease_seconds(absl::ToDoubleSeconds(options_.lease));
  response.set_interval_seconds(absl::ToDoubleSeconds(options_.heartbeat_interval));
  std::set<std::pair<std::string, int>> reported;
  for (const v1::ProcessStatus& process : request.processes()) {
    reported.insert({process.trial_id(), process.attempt()});
    v1::Trial* trial = lifecycle_.FindTrial(process.trial_id());
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
    registry_.RecordLaunchSuccess(worker_id);
    const bool all_running = lifecycle_.SliceRunning(*trial, worker_id);
    if (all_running && trial->state() == v1::TRIAL_STATE_SCHEDULED) {
      if (absl::Status status =
              lifecycle_.Transition(*trial, v1::TRIAL_STATE_RUNNING, arrival, "all ranks running");
          !status.ok()) {
        return status;
      }
    }
  }
  // This worker's share of live placements, not every trial: launches are repeated until the
  // worker reports the gang (workers dedupe on trial and attempt), and a gang the worker once
  // reported running but no longer lists is gone (its agent restarted).
  for (const std::string& trial_id : registry_.TrialsOn(worker_id)) {
    v1::Trial* trial = lifecycle_.FindTrial(trial_id);
    if (trial == nullptr || reported.count({trial->id(), trial->attempt()})) continue;
    const int slice = SliceOf(trial->placement(), worker_id);
    const bool seen_running = lifecycle_.IsSliceRunning(trial_id, worker_id);
    if (trial->state() == v1::TRIAL_STATE_SCHEDULED && !seen_running) {
      *response.add_actions()->mutable_launch() = LaunchOf(*trial, slice);
    } else if (seen_running || (trial->state() == v1::TRIAL_STATE_RUNNING && slice == 0)) {
      // Rank 0's slice of a RUNNING trial is listed until its exit was reported, even across a
      // coordinator restart; other slices may have finished cleanly, so only a slice this
      // process saw running counts.
      if (absl::Status status = lifecycle_.RestartOrFail(
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

absl::Status Controller::ReportMetrics(const v1::ReportMetricsRequest& request,
                                       v1::ReportMetricsResponse* response) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  absl::MutexLock lock(&mu_);
  std::vector<v1::MetricPoint> accepted;
  std::map<std::string, v1::Trial> updated;
  std::vector<std::string> rejected;
  for (int i = 0; i < request.points_size(); ++i) {
    const v1::MetricPoint& point = request.points(i);
    const std::string where = absl::StrCat("points[", i, "] (", Quote(point.name()), ")");
    const v1::Trial* trial = lifecycle_.FindTrial(point.trial_id());
    if (trial == nullptr) {
      rejected.push_back(
          absl::StrCat(where, ": trial_id: unknown trial '", Quote(point.trial_id()), "'"));
      continue;
    }
    if (point.name().empty()) {
      rejected.push_back(absl::StrCat(where, ": name: required"));
      continue;
    }
    if (!std::isfinite(point.value()) || !std::isfinite(point.train_seconds()) ||
        !std::isfinite(point.unix_time())) {
      rejected.push_back(absl::StrCat(where, ": value, train_seconds and unix_time must be finite (",
                                      point.value(), ", ", point.train_seconds(), ", ",
                                      point.unix_time(), ")"));
      continue;
    }
    if (point.step() < 0 || point.tokens() < 0) {
      rejected.push_back(absl::StrCat(where, ": step and tokens must be >= 0"));
      continue;
    }
    // A gang from an attempt the coordinator has given up on may still be talking: drop it.
    if (request.attempt() != 0 && request.attempt() != trial->attempt()) continue;
    accepted.push_back(point);
    auto [it, inserted] = updated.try_emplace(trial->id(), *trial);
    v1::Trial& next = it->second;
    if (point.name() == kResumedFromStep) {
      // What the restart cost: the failed attempt's last step minus where this one resumed.
      const int64_t resumed = static_cast<int64_t>(point.value());
      next.set_steps_lost(next.steps_lost() + std::max<int64_t>(0, next.latest_step() - resumed));
      next.set_latest_step(resumed);
      continue;
    }
    (*next.mutable_latest_metrics())[point.name()] = point.value();
    next.set_latest_step(std::max(next.latest_step(), point.step()));
  }
  if (!rejected.empty()) {
    std::cerr << "coordinator: ReportMetrics from " << Quote(request.worker_id()) << ": rejected "
              << rejected.size() << " of " << request.points_size()
              << " points, first: " << rejected.front() << std::endl;
  }
  if (response != nullptr) {
    for (std::string& r : rejected) response->add_rejected(std::move(r));
  }
  if (accepted.empty()) return absl::OkStatus();
  std::vector<const v1::Trial*> trials;
  for (const auto& entry : updated) trials.push_back(&entry.second);
  if (absl::Status status = store_->SaveMetrics(accepted, trials); !status.ok()) return status;

  for (auto& [id, next] : updated) *lifecycle_.FindTrial(id) = std::move(next);
  // Gauges are set here, synchronously, so the next scrape already sees the point.
  for (const v1::MetricPoint& point : accepted) {
    const v1::Trial& trial = *lifecycle_.FindTrial(point.trial_id());
    metrics_->ObserveTrialMetric({trial.experiment_id(), trial.id(), trial.variant(),
                                  trial.spec().model().arch(), absl::StrCat(trial.seed())},
                                 point);
    hub_.Metric(trial.experiment_id(), point);
  }
  metrics_->AddMetricPoints(static_cast<int>(accepted.size()));
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
  return lifecycle_.HandleExit(*trial, request.worker_id(), request.exit_code(),
                               Quote(request.reason()), now);
}

absl::Status Controller::ReportLogs(const v1::ReportLogsRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < request.chunks_size(); ++i) {
      const v1::LogChunk& chunk = request.chunks(i);
      if (lifecycle_.FindTrial(chunk.trial_id()) == nullptr) {
        return absl::NotFoundError(absl::StrCat("chunks[", i, "].trial_id: unknown trial '",
                                                Quote(chunk.trial_id()), "'"));
      }
      if (chunk.rank() < 0) {
        return absl::InvalidArgumentError(absl::StrCat("chunks[", i, "].rank: must be >= 0"));
      }
    }
  }
  if (request.chunks_size() == 0) return absl::OkStatus();
  std::vector<v1::LogChunk> chunks(request.chunks().begin(), request.chunks().end());
  if (absl::Status status = store_->AppendLogs(chunks); !status.ok()) return status;
  absl::MutexLock lock(&logs_mu_);
  ++logs_version_;
  return absl::OkStatus();
}

absl::Status Controller::Deregister(const v1::DeregisterRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  absl::MutexLock lock(&mu_);
  std::cerr << "coordinator: worker " << Quote(request.worker_id()) << " deregistered"
            << (request.reason().empty() ? "" : ": ") << Quote(request.reason()) << std::endl;
  registry_.Deregister(request.worker_id());
  return lifecycle_.LoseWorker(request.worker_id(),
                               absl::StrCat("worker ", request.worker_id(), " shut down"),
                               clock_->Now());
}

void Controller::Schedule(absl::Time now) {
  if (lifecycle_.pending_count() == 0) return;
  last_schedule_ = now;
  ScheduleResult result = gauntlet::Schedule(registry_.Snapshot(now), lifecycle_.Pending());
  for (auto& [trial_id, placement] : result.placements) {
    v1::Trial* trial = lifecycle_.FindTrial(trial_id);
    absl::Status status = lifecycle_.Transition(
        *trial, v1::TRIAL_STATE_SCHEDULED, now,
        absl::StrCat("placed on ", placement.slices_size(), " worker(s)"),
        [&placement](v1::Trial& t) { *t.mutable_placement() = placement; });
    if (!status.ok()) {
      schedule_again_ = true;
      std::cerr << "coordinator: cannot schedule " << trial_id << ": " << status << std::endl;
    }
  }
  for (const auto& [trial_id, why] : result.waiting) lifecycle_.SetWaiting(trial_id, why);
}

void Controller::Tick(absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (const std::string& worker_id : registry_.ExpireLeases(now)) {
    absl::Status status =
        lifecycle_.LoseWorker(worker_id, absl::StrCat("worker ", worker_id, " lost"), now);
    if (!status.ok()) {
      // The lease is re-checked next tick; the trials keep their state until the write succeeds.
      registry_.Revive(worker_id);
      std::cerr << "coordinator: " << status << std::endl;
    }
  }
  // Event-driven: a pass only when a trial became pending or capacity may have grown (plus a
  // slow safety net, e.g. for a worker whose unhealthy period ended).
  const bool new_pending = lifecycle_.TakeNewPending();
  const bool capacity = registry_.TakeCapacityChanged();
  if (new_pending || capacity || std::exchange(schedule_again_, false) ||
      now - last_schedule_ >= options_.schedule_every) {
    Schedule(now);
  }
  for (const std::string& id : lifecycle_.TakeFinishedBefore(now - options_.finished_series_retention)) {
    metrics_->RemoveExperiment(id);
  }
  RefreshGauges(now);
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
