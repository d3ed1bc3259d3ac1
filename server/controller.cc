#include "server/controller.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/json_util.h"
#include "server/compare.h"
#include "server/trial_state.h"

namespace gauntlet {
namespace {

constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;

// Trainer exit codes that a restart cannot fix (see ReportTrialExitRequest.exit_code).
bool Retryable(int exit_code) { return exit_code != 2 && exit_code != 3; }

double Unix(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

bool Live(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SCHEDULED || state == v1::TRIAL_STATE_RUNNING;
}

// Index of `worker_id`'s slice in the placement, or -1.
int SliceOf(const v1::Placement& placement, const std::string& worker_id) {
  for (int i = 0; i < placement.slices_size(); ++i) {
    if (placement.slices(i).worker_id() == worker_id) return i;
  }
  return -1;
}

int DevicesOf(const v1::Trial& trial) {
  const auto& r = trial.spec().resources();
  return r.has_gpus_per_trial() ? r.gpus_per_trial() : 1;
}

int MaxNodesOf(const v1::Trial& trial) {
  const auto& r = trial.spec().resources();
  return r.has_max_nodes() ? r.max_nodes() : 1;
}

// Time the trial last entered PENDING (its creation when it never left).
double PendingSince(const v1::Trial& trial) {
  for (int i = trial.transitions_size() - 1; i >= 0; --i) {
    if (trial.transitions(i).to() == v1::TRIAL_STATE_PENDING) {
      return trial.transitions(i).unix_time();
    }
  }
  return trial.created_unix_time();
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
      options_(options) {}

absl::Status Controller::Recover() {
  absl::StatusOr<std::vector<v1::Experiment>> loaded = store_->LoadExperiments();
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<std::map<std::string, std::string>> summaries = store_->LoadSummaries();
  if (!summaries.ok()) return summaries.status();

  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (v1::Experiment& experiment : *loaded) {
    int64_t sequence = 0;
    if (!absl::SimpleAtoi(absl::string_view(experiment.id()).substr(4), &sequence)) {
      return absl::DataLossError("store: malformed experiment id " + experiment.id());
    }
    next_sequence_ = std::max(next_sequence_, sequence + 1);
    sequence_[experiment.id()] = sequence;
    id_by_name_[experiment.spec().name()] = experiment.id();
    for (int i = 0; i < experiment.trials_size(); ++i) {
      const v1::Trial& trial = experiment.trials(i);
      trials_[trial.id()] = {experiment.id(), i};
      if (!Live(trial.state())) continue;
      for (const v1::PlacementSlice& slice : trial.placement().slices()) {
        WorkerRecord& worker = workers_[slice.worker_id()];
        worker.last_heartbeat = now;
      }
    }
    experiments_[experiment.id()] = std::move(experiment);
  }
  for (const auto& [trial_id, json] : *summaries) {
    v1::TrainerSummary summary;
    if (google::protobuf::util::JsonStringToMessage(json, &summary).ok()) {
      summaries_[trial_id] = summary;
    }
  }
  RefreshGauges();
  return absl::OkStatus();
}

v1::Trial* Controller::FindTrial(const std::string& trial_id) {
  auto it = trials_.find(trial_id);
  if (it == trials_.end()) return nullptr;
  return experiments_[it->second.experiment_id].mutable_trials(it->second.index);
}

v1::Experiment* Controller::FindExperiment(const std::string& id_or_name) {
  auto it = experiments_.find(id_or_name);
  if (it != experiments_.end()) return &it->second;
  auto by_name = id_by_name_.find(id_or_name);
  if (by_name != id_by_name_.end()) return &experiments_[by_name->second];
  return nullptr;
}

int Controller::MaxRestarts(const v1::Trial& trial) const {
  const v1::ExperimentSpec& spec = experiments_.at(trial.experiment_id()).spec();
  return spec.has_max_restarts() ? spec.max_restarts() : 1;
}

absl::Status Controller::Transition(v1::Trial& trial, v1::TrialState to, absl::Time now,
                                    const std::string& reason,
                                    const std::function<void(v1::Trial&)>& mutate) {
  v1::Trial next = trial;
  if (absl::Status status = ApplyTransition(next, to, now, reason); !status.ok()) return status;
  if (mutate) mutate(next);
  // Written before it is acted on: memory changes only after the store accepted it.
  if (absl::Status status = store_->SaveTrial(next, &next.transitions(next.transitions_size() - 1));
      !status.ok()) {
    return status;
  }
  const v1::TrialState from = trial.state();
  trial = std::move(next);
  running_slices_.erase(trial.id());
  if (to == v1::TRIAL_STATE_SCHEDULED) {
    metrics_->ObserveSchedulingLatency(std::max(0.0, Unix(now) - PendingSince(trial)));
  }
  if (to == v1::TRIAL_STATE_PENDING && Live(from)) metrics_->IncrementRestarts();
  Publish(trial);
  return absl::OkStatus();
}

absl::Status Controller::RestartOrFail(v1::Trial& trial, absl::Time now, const std::string& reason,
                                       bool retryable, int exit_code) {
  const auto record_exit = [exit_code](v1::Trial& t) {
    if (exit_code != 0) t.set_exit_code(exit_code);
  };
  const int restarts_used = trial.attempt() - 1;
  if (retryable && restarts_used < MaxRestarts(trial)) {
    return Transition(trial, v1::TRIAL_STATE_PENDING, now,
                      absl::StrCat(reason, "; restarting (attempt ", trial.attempt() + 1,
                                   ", resumes from its last checkpoint)"),
                      record_exit);
  }
  return Transition(trial, v1::TRIAL_STATE_FAILED, now,
                    retryable ? absl::StrCat(reason, "; no restarts left (max_restarts ",
                                             MaxRestarts(trial), ")")
                              : absl::StrCat(reason, " (not retried)"),
                    record_exit);
}

absl::Status Controller::HandleExit(v1::Trial& trial, const std::string& worker_id, int exit_code,
                                    const std::string& reason, absl::Time now) {
  if (exit_code == 0) {
    // Rank 0's slice decides success: it evaluates, writes the summary and the last checkpoint.
    if (SliceOf(trial.placement(), worker_id) != 0) return absl::OkStatus();
    if (trial.state() == v1::TRIAL_STATE_SCHEDULED) {
      // It finished before a heartbeat reported it RUNNING; the table has no shortcut.
      if (absl::Status s = Transition(trial, v1::TRIAL_STATE_RUNNING, now, "ranks started");
          !s.ok()) {
        return s;
      }
    }
    return Transition(trial, v1::TRIAL_STATE_COMPLETED, now, "completed",
                      [](v1::Trial& t) { t.set_exit_code(0); });
  }
  // Any failing rank fails the whole gang; the other slices are stopped at their next heartbeat.
  return RestartOrFail(trial, now,
                       absl::StrCat("exit code ", exit_code, " on worker ", worker_id,
                                    reason.empty() ? "" : ": ", reason),
                       Retryable(exit_code), exit_code);
}

void Controller::Publish(const v1::Trial& trial) {
  auto it = watchers_.find(trial.experiment_id());
  if (it == watchers_.end()) return;
  const v1::Experiment& experiment = experiments_.at(trial.experiment_id());
  const v1::ExperimentState state = DeriveExperimentState(experiment);
  const bool finished = state == v1::EXPERIMENT_STATE_COMPLETED ||
                        state == v1::EXPERIMENT_STATE_FAILED ||
                        state == v1::EXPERIMENT_STATE_CANCELED;
  v1::WatchEvent update;
  *update.mutable_trial_update() = trial;
  v1::WatchEvent end;
  if (finished) *end.mutable_finished() = View(experiment, true, false);
  for (const std::weak_ptr<WatchQueue>& weak : it->second) {
    if (std::shared_ptr<WatchQueue> queue = weak.lock()) {
      queue->Push(update);
      if (finished) {
        queue->Push(end);
        queue->Close();
      }
    }
  }
  if (finished) watchers_.erase(it);
}

v1::Experiment Controller::View(const v1::Experiment& experiment, bool include_spec,
                                bool include_transitions) const {
  v1::Experiment view = experiment;
  view.set_state(DeriveExperimentState(experiment));
  auto& counts = *view.mutable_trial_counts();
  for (v1::Trial& trial : *view.mutable_trials()) {
    ++counts[TrialStateName(trial.state())];
    if (!include_spec) trial.clear_spec();
    if (!include_transitions) trial.clear_transitions();
  }
  if (!include_spec) {
    view.clear_spec_yaml();
  }
  return view;
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
  if (auto it = id_by_name_.find(name); it != id_by_name_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("name: an experiment named '", name, "' already exists (", it->second, ")"));
  }
  // A gang larger than the registered cluster could ever hold is refused now, not queued forever.
  ClusterSnapshot cluster = Snapshot();
  if (!cluster.workers.empty()) {
    for (const v1::Trial& trial : compiled->trials) {
      const DeviceKind kind = ResolveDeviceKind(trial.spec().resources().device(), cluster);
      int largest = 0;
      for (const WorkerSnapshot& w : cluster.workers) {
        largest = std::max(largest, kind == DeviceKind::kGpu ? static_cast<int>(w.gpus.size())
                                                             : w.cpu_slots);
      }
      if (DevicesOf(trial) > MaxNodesOf(trial) * largest) {
        return absl::InvalidArgumentError(absl::StrCat(
            "resources.gpus_per_trial: variant '", trial.variant(), "' needs ", DevicesOf(trial),
            " ", kind == DeviceKind::kGpu ? "gpu" : "cpu", " devices but can get at most ",
            MaxNodesOf(trial) * largest, " (max_nodes ", MaxNodesOf(trial),
            " x largest registered worker's ", largest, ")"));
      }
    }
  }

  const absl::Time now = clock_->Now();
  const int64_t sequence = next_sequence_;
  v1::Experiment experiment;
  experiment.set_id(request.dry_run() ? "" : absl::StrCat("exp-", sequence));
  *experiment.mutable_spec() = compiled->spec;
  experiment.set_spec_yaml(request.spec_yaml());
  experiment.set_created_unix_time(Unix(now));
  for (size_t i = 0; i < compiled->trials.size(); ++i) {
    v1::Trial& trial = *experiment.add_trials();
    trial = compiled->trials[i];
    trial.set_id(absl::StrCat(experiment.id(), "-", i));
    trial.set_experiment_id(experiment.id());
    trial.set_state(v1::TRIAL_STATE_PENDING);
    trial.set_attempt(1);
    trial.set_created_unix_time(Unix(now));
    trial.set_status_message("waiting for the scheduler");
  }
  if (request.dry_run()) return View(experiment, true, true);

  if (absl::Status status = store_->CreateExperiment(experiment); !status.ok()) return status;
  ++next_sequence_;
  sequence_[experiment.id()] = sequence;
  id_by_name_[name] = experiment.id();
  for (int i = 0; i < experiment.trials_size(); ++i) {
    trials_[experiment.trials(i).id()] = {experiment.id(), i};
  }
  const std::string id = experiment.id();
  experiments_[id] = std::move(experiment);
  RefreshGauges();
  return View(experiments_[id], true, true);
}

absl::StatusOr<v1::Experiment> Controller::Get(const v1::GetExperimentRequest& request) {
  if (request.experiment().empty()) {
    return absl::InvalidArgumentError("experiment: required (an experiment id or name)");
  }
  absl::MutexLock lock(&mu_);
  const v1::Experiment* experiment = FindExperiment(request.experiment());
  if (experiment == nullptr) {
    return absl::NotFoundError(absl::StrCat("experiment '", request.experiment(), "' not found"));
  }
  return View(*experiment, true, request.include_transitions());
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
        absl::StrCat("page_token: malformed '", request.page_token(), "'"));
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
  for (const auto& [id, experiment] : experiments_) {
    const int64_t sequence = sequence_[id];
    if (sequence >= before) continue;
    if (!absl::StartsWith(experiment.spec().name(), request.name_prefix())) continue;
    if (!states.empty() && !states.count(DeriveExperimentState(experiment))) continue;
    order.push_back({sequence, &experiment});
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  v1::ListExperimentsResponse response;
  for (size_t i = 0; i < order.size() && i < static_cast<size_t>(page_size); ++i) {
    v1::Experiment* view = response.add_experiments();
    *view = View(*order[i].second, false, false);
    // Spec summary stays (name, variants...) but the YAML and trial specs are left out.
  }
  if (order.size() > static_cast<size_t>(page_size)) {
    response.set_next_page_token(absl::StrCat(order[page_size - 1].first));
  }
  return response;
}

absl::StatusOr<v1::Experiment> Controller::Cancel(const v1::CancelExperimentRequest& request) {
  if (request.experiment().empty()) {
    return absl::InvalidArgumentError("experiment: required (an experiment id or name)");
  }
  absl::MutexLock lock(&mu_);
  v1::Experiment* experiment = FindExperiment(request.experiment());
  if (experiment == nullptr) {
    return absl::NotFoundError(absl::StrCat("experiment '", request.experiment(), "' not found"));
  }
  const v1::ExperimentState state = DeriveExperimentState(*experiment);
  if (state != v1::EXPERIMENT_STATE_PENDING && state != v1::EXPERIMENT_STATE_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("experiment ", experiment->id(),
                                                      " already finished (",
                                                      ExperimentStateName(state), ")"));
  }
  const std::string reason =
      request.reason().empty() ? "canceled" : absl::StrCat("canceled: ", request.reason());
  const absl::Time now = clock_->Now();
  // Workers stop the running gangs at their next heartbeat: their trial is no longer live.
  for (v1::Trial& trial : *experiment->mutable_trials()) {
    if (IsTerminal(trial.state())) continue;
    if (absl::Status status = Transition(trial, v1::TRIAL_STATE_CANCELED, now, reason);
        !status.ok()) {
      return status;
    }
  }
  RefreshGauges();
  return View(*experiment, true, false);
}

absl::StatusOr<v1::CompareExperimentResponse> Controller::Compare(
    const v1::CompareExperimentRequest& request) {
  if (request.experiment().empty()) {
    return absl::InvalidArgumentError("experiment: required (an experiment id or name)");
  }
  v1::Experiment experiment;
  std::vector<TrialResult> results;
  {
    absl::MutexLock lock(&mu_);
    const v1::Experiment* found = FindExperiment(request.experiment());
    if (found == nullptr) {
      return absl::NotFoundError(absl::StrCat("experiment '", request.experiment(), "' not found"));
    }
    experiment = *found;
    for (const v1::Trial& trial : experiment.trials()) {
      TrialResult& result = results.emplace_back();
      result.trial = trial;
      if (auto it = summaries_.find(trial.id()); it != summaries_.end()) {
        result.summary = it->second;
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
  if (request.experiment().empty()) {
    return absl::InvalidArgumentError("experiment: required (an experiment id or name)");
  }
  absl::MutexLock lock(&mu_);
  const v1::Experiment* experiment = FindExperiment(request.experiment());
  if (experiment == nullptr) {
    return absl::NotFoundError(absl::StrCat("experiment '", request.experiment(), "' not found"));
  }
  *snapshot = View(*experiment, true, false);
  auto queue = std::make_shared<WatchQueue>(request.include_metrics());
  const v1::ExperimentState state = snapshot->state();
  if (state != v1::EXPERIMENT_STATE_PENDING && state != v1::EXPERIMENT_STATE_RUNNING) {
    v1::WatchEvent end;
    *end.mutable_finished() = *snapshot;
    queue->Push(std::move(end));
    queue->Close();
    return queue;
  }
  auto& list = watchers_[experiment->id()];
  // Drop streams that have gone away.
  list.erase(std::remove_if(list.begin(), list.end(),
                            [](const std::weak_ptr<WatchQueue>& w) { return w.expired(); }),
             list.end());
  list.push_back(queue);
  return queue;
}

absl::StatusOr<std::vector<StoredLogChunk>> Controller::ReadLogs(const std::string& trial_id,
                                                                 int rank, int64_t after_id) {
  {
    absl::MutexLock lock(&mu_);
    if (FindTrial(trial_id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("trial '", trial_id, "' not found"));
    }
  }
  return store_->ReadLogs(trial_id, rank, after_id);
}

absl::StatusOr<bool> Controller::TrialFinished(const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  const v1::Trial* trial = FindTrial(trial_id);
  if (trial == nullptr) return absl::NotFoundError(absl::StrCat("trial '", trial_id, "' not found"));
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

absl::StatusOr<v1::HeartbeatResponse> Controller::Heartbeat(const v1::HeartbeatRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  if (absl::Status status = ValidateInventory(request.inventory()); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  const std::string& worker_id = request.worker_id();
  WorkerRecord& worker = workers_[worker_id];
  worker.inventory = request.inventory();
  if (worker.inventory.address().empty()) worker.inventory.set_address(worker.inventory.hostname());
  worker.last_heartbeat = now;
  worker.alive = true;
  worker.has_inventory = true;

  v1::HeartbeatResponse response;
  response.set_lease_seconds(absl::ToDoubleSeconds(options_.lease));
  response.set_interval_seconds(absl::ToDoubleSeconds(options_.heartbeat_interval));
  std::set<std::pair<std::string, int>> reported;
  for (const v1::ProcessStatus& process : request.processes()) {
    reported.insert({process.trial_id(), process.attempt()});
    v1::Trial* trial = FindTrial(process.trial_id());
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
    absl::Status status;
    if (process.state() == v1::PROCESS_STATE_EXITED) {
      status = HandleExit(*trial, worker_id, process.exit_code(), process.reason(), now);
    } else if (process.state() == v1::PROCESS_STATE_RUNNING &&
               trial->state() == v1::TRIAL_STATE_SCHEDULED) {
      std::set<std::string>& running = running_slices_[trial->id()];
      running.insert(worker_id);
      if (static_cast<int>(running.size()) == trial->placement().slices_size()) {
        status = Transition(*trial, v1::TRIAL_STATE_RUNNING, now, "all ranks running");
      }
    }
    if (!status.ok()) return status;
  }
  // Launches are repeated until the worker reports the gang; workers dedupe on (trial, attempt).
  for (const auto& [trial_id, ref] : trials_) {
    const v1::Trial& trial = experiments_[ref.experiment_id].trials(ref.index);
    if (trial.state() != v1::TRIAL_STATE_SCHEDULED) continue;
    const int slice = SliceOf(trial.placement(), worker_id);
    if (slice < 0 || reported.count({trial.id(), trial.attempt()})) continue;
    v1::LaunchTrial* launch = response.add_actions()->mutable_launch();
    launch->set_trial_id(trial.id());
    launch->set_attempt(trial.attempt());
    *launch->mutable_spec() = trial.spec();
    *launch->mutable_placement() = trial.placement();
    launch->set_slice_index(slice);
    launch->set_world_size(DevicesOf(trial));
  }
  RefreshGauges();
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
    const std::string where = absl::StrCat("points[", i, "] (", point.name(), ")");
    const v1::Trial* trial = FindTrial(point.trial_id());
    if (trial == nullptr) {
      rejected.push_back(absl::StrCat(where, ": trial_id: unknown trial '", point.trial_id(), "'"));
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
    (*next.mutable_latest_metrics())[point.name()] = point.value();
    next.set_latest_step(std::max(next.latest_step(), point.step()));
  }
  if (!rejected.empty()) {
    std::cerr << "coordinator: ReportMetrics from " << request.worker_id() << ": rejected "
              << rejected.size() << " of " << request.points_size() << " points, first: "
              << rejected.front() << std::endl;
  }
  if (response != nullptr) {
    for (std::string& r : rejected) response->add_rejected(std::move(r));
  }
  if (accepted.empty()) return absl::OkStatus();
  std::vector<const v1::Trial*> trials;
  for (const auto& entry : updated) trials.push_back(&entry.second);
  if (absl::Status status = store_->SaveMetrics(accepted, trials); !status.ok()) return status;

  for (auto& [id, next] : updated) *FindTrial(id) = std::move(next);
  // Gauges are set here, synchronously, so the next scrape already sees the point.
  for (const v1::MetricPoint& point : accepted) {
    const v1::Trial& trial = *FindTrial(point.trial_id());
    metrics_->ObserveTrialMetric({trial.experiment_id(), trial.id(), trial.variant(),
                                  trial.spec().model().arch(), absl::StrCat(trial.seed())},
                                 point);
    auto watchers = watchers_.find(trial.experiment_id());
    if (watchers == watchers_.end()) continue;
    v1::WatchEvent event;
    *event.mutable_metric() = point;
    for (const auto& weak : watchers->second) {
      if (auto queue = weak.lock()) queue->Push(event);
    }
  }
  metrics_->AddMetricPoints(static_cast<int>(accepted.size()));
  return absl::OkStatus();
}

absl::Status Controller::ReportTrialExit(const v1::ReportTrialExitRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  if (request.trial_id().empty()) return absl::InvalidArgumentError("trial_id: required");
  // An unreadable summary must not cost the exit itself: the exit is applied, then reported.
  std::optional<v1::TrainerSummary> summary;
  absl::Status summary_error;
  if (!request.summary_json().empty()) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;  // a newer trainer may add fields
    summary.emplace();
    if (auto status =
            google::protobuf::util::JsonStringToMessage(request.summary_json(), &*summary, options);
        !status.ok()) {
      summary.reset();
      summary_error = absl::InvalidArgumentError(absl::StrCat(
          "summary_json: not a TrainerSummary (the exit was recorded without it): ",
          status.ToString()));
    }
  }
  absl::MutexLock lock(&mu_);
  v1::Trial* trial = FindTrial(request.trial_id());
  if (trial == nullptr) {
    return absl::NotFoundError(absl::StrCat("trial_id: unknown trial '", request.trial_id(), "'"));
  }
  if (request.attempt() != trial->attempt()) return absl::OkStatus();  // a stale gang
  // The summary is kept even when the exit already arrived through a heartbeat.
  if (summary.has_value() && request.exit_code() == 0) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(*summary, &json);
    if (absl::Status status = store_->SaveSummary(trial->id(), json); !status.ok()) return status;
    summaries_[trial->id()] = *summary;
  }
  if (!Live(trial->state()) || SliceOf(trial->placement(), request.worker_id()) < 0) {
    return summary_error;
  }
  absl::Status status =
      HandleExit(*trial, request.worker_id(), request.exit_code(), request.reason(), clock_->Now());
  RefreshGauges();
  return status.ok() ? summary_error : status;
}

absl::Status Controller::ReportLogs(const v1::ReportLogsRequest& request) {
  if (request.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < request.chunks_size(); ++i) {
      const v1::LogChunk& chunk = request.chunks(i);
      if (FindTrial(chunk.trial_id()) == nullptr) {
        return absl::NotFoundError(
            absl::StrCat("chunks[", i, "].trial_id: unknown trial '", chunk.trial_id(), "'"));
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

ClusterSnapshot Controller::Snapshot() const {
  ClusterSnapshot cluster;
  std::map<std::string, size_t> index;
  for (const auto& [id, worker] : workers_) {
    if (!worker.alive || !worker.has_inventory) continue;
    WorkerSnapshot& w = cluster.workers.emplace_back();
    w.id = id;
    w.address = worker.inventory.address();
    for (const v1::GpuInfo& gpu : worker.inventory.gpus()) w.gpus.push_back(gpu.index());
    w.cpu_slots = worker.inventory.cpu_slots();
    w.rendezvous_port_base = worker.inventory.rendezvous_port_base();
    index[id] = cluster.workers.size() - 1;
  }
  for (const auto& [trial_id, ref] : trials_) {
    const v1::Trial& trial = experiments_.at(ref.experiment_id).trials(ref.index);
    if (!Live(trial.state())) continue;
    const bool cpu = ResolveDeviceKind(trial.spec().resources().device(), cluster) ==
                     DeviceKind::kCpu;
    for (int s = 0; s < trial.placement().slices_size(); ++s) {
      const v1::PlacementSlice& slice = trial.placement().slices(s);
      auto it = index.find(slice.worker_id());
      if (it == index.end()) continue;
      WorkerSnapshot& w = cluster.workers[it->second];
      for (int device : slice.devices()) (cpu ? w.busy_cpu_slots : w.busy_gpus).insert(device);
      if (s == 0) w.busy_ports.insert(trial.placement().master_port());
    }
  }
  return cluster;
}

void Controller::Schedule(absl::Time now) {
  std::vector<PendingTrial> pending;
  for (const auto& [trial_id, ref] : trials_) {
    const v1::Experiment& experiment = experiments_.at(ref.experiment_id);
    const v1::Trial& trial = experiment.trials(ref.index);
    if (trial.state() != v1::TRIAL_STATE_PENDING) continue;
    PendingTrial& p = pending.emplace_back();
    p.id = trial.id();
    p.priority = experiment.spec().priority();
    // FIFO across experiments, then trial order within one.
    p.sequence = sequence_.at(ref.experiment_id) * 1000000 + ref.index;
    p.devices = DevicesOf(trial);
    p.max_nodes = MaxNodesOf(trial);
    p.device = trial.spec().resources().device();
  }
  if (pending.empty()) return;
  ScheduleResult result = gauntlet::Schedule(Snapshot(), std::move(pending));
  for (auto& [trial_id, placement] : result.placements) {
    v1::Trial* trial = FindTrial(trial_id);
    absl::Status status =
        Transition(*trial, v1::TRIAL_STATE_SCHEDULED, now,
                   absl::StrCat("placed on ", placement.slices_size(), " worker(s)"),
                   [&placement](v1::Trial& t) { *t.mutable_placement() = placement; });
    if (!status.ok()) {
      std::cerr << "coordinator: cannot schedule " << trial_id << ": " << status << std::endl;
    }
  }
  for (const auto& [trial_id, why] : result.waiting) {
    v1::Trial* trial = FindTrial(trial_id);
    if (trial->status_message() == why) continue;
    v1::Trial next = *trial;
    next.set_status_message(why);
    if (store_->SaveTrial(next, nullptr).ok()) *trial = std::move(next);
  }
}

void Controller::ExpireLeases(absl::Time now) {
  for (auto& [worker_id, worker] : workers_) {
    if (!worker.alive || now - worker.last_heartbeat <= options_.lease) continue;
    worker.alive = false;
    std::cerr << "coordinator: worker " << worker_id << " lost (no heartbeat for "
              << absl::FormatDuration(now - worker.last_heartbeat) << ")" << std::endl;
    for (const auto& [trial_id, ref] : trials_) {
      v1::Trial* trial = experiments_[ref.experiment_id].mutable_trials(ref.index);
      if (!Live(trial->state()) || SliceOf(trial->placement(), worker_id) < 0) continue;
      absl::Status status =
          RestartOrFail(*trial, now, absl::StrCat("worker ", worker_id, " lost"), true, 0);
      if (!status.ok()) {
        // The lease is re-checked next tick; the trial keeps its state until the write succeeds.
        worker.alive = true;
        std::cerr << "coordinator: " << status << std::endl;
      }
    }
  }
}

void Controller::Tick(absl::Time now) {
  absl::MutexLock lock(&mu_);
  ExpireLeases(now);
  Schedule(now);
  RefreshGauges();
}

void Controller::RefreshGauges() {
  std::map<std::string, int> experiment_counts, trial_counts;
  int pending = 0;
  for (const auto& [id, experiment] : experiments_) {
    ++experiment_counts[ExperimentStateName(DeriveExperimentState(experiment))];
    for (const v1::Trial& trial : experiment.trials()) {
      ++trial_counts[TrialStateName(trial.state())];
      if (trial.state() == v1::TRIAL_STATE_PENDING) ++pending;
    }
  }
  metrics_->SetExperimentCounts(experiment_counts);
  metrics_->SetTrialCounts(trial_counts);
  metrics_->SetQueueDepth(pending);
  int alive = 0, lost = 0;
  for (const auto& [id, worker] : workers_) (worker.alive ? alive : lost)++;
  metrics_->SetWorkerCounts(alive, lost);
  int gpu_total = 0, gpu_busy = 0, cpu_total = 0, cpu_busy = 0;
  for (const WorkerSnapshot& w : Snapshot().workers) {
    gpu_total += w.gpus.size();
    gpu_busy += w.busy_gpus.size();
    cpu_total += w.cpu_slots;
    cpu_busy += w.busy_cpu_slots.size();
  }
  metrics_->SetDeviceCounts(gpu_total - gpu_busy, gpu_busy, cpu_total - cpu_busy, cpu_busy);
}

}  // namespace gauntlet
