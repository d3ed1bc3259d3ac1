#include "server/trial_lifecycle.h"

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/trial_state.h"

namespace gauntlet {
namespace {

double Unix(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

bool Live(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SCHEDULED || state == v1::TRIAL_STATE_RUNNING;
}

bool Finished(v1::ExperimentState state) {
  return state == v1::EXPERIMENT_STATE_COMPLETED || state == v1::EXPERIMENT_STATE_FAILED ||
         state == v1::EXPERIMENT_STATE_CANCELED;
}

// Time the trial last entered PENDING (its creation when it never left).
double PendingSince(const v1::Trial& trial) {
  for (int i = trial.transitions_size() - 1; i >= 0; --i) {
    if (trial.transitions(i).to() == v1::TRIAL_STATE_PENDING) return trial.transitions(i).unix_time();
  }
  return trial.created_unix_time();
}

}  // namespace

TrialLifecycle::TrialLifecycle(Store* store, CoordinatorMetrics* metrics,
                               WorkerRegistry* registry, WatchHub* hub)
    : store_(store), metrics_(metrics), registry_(registry), hub_(hub) {}

void TrialLifecycle::Index(const v1::Experiment& experiment) {
  id_by_name_[experiment.spec().name()] = experiment.id();
  for (int i = 0; i < experiment.trials_size(); ++i) {
    const v1::Trial& trial = experiment.trials(i);
    trials_[trial.id()] = {experiment.id(), i};
    ++trial_counts_[trial.state()];
    ++experiment_trial_counts_[experiment.id()][trial.state()];
    if (trial.state() == v1::TRIAL_STATE_PENDING) {
      pending_[trial.id()] = ToPending(trial);
      new_pending_ = true;
    }
    if (Live(trial.state())) registry_->Book(trial.id(), trial.placement());
    if (!trial.spec().inference().checkpoint_variant().empty()) {
      waits_for_[trial.id()] = trial.spec().inference().checkpoint_path();
    }
  }
  experiment_states_[experiment.id()] = DeriveExperimentState(experiment);
}

absl::Status TrialLifecycle::Recover(absl::Time now) {
  absl::StatusOr<std::vector<v1::Experiment>> loaded = store_->LoadExperiments();
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<std::map<std::string, v1::TrainerSummary>> summaries = store_->LoadSummaries();
  if (!summaries.ok()) return summaries.status();
  for (v1::Experiment& experiment : *loaded) {
    int64_t sequence = 0;
    if (!absl::SimpleAtoi(absl::string_view(experiment.id()).substr(4), &sequence)) {
      return absl::DataLossError("store: malformed experiment id " + experiment.id());
    }
    next_sequence_ = std::max(next_sequence_, sequence + 1);
    sequence_[experiment.id()] = sequence;
    // Workers of live placements get a fresh lease: if they heartbeat in time their trials are
    // adopted, otherwise they are lost as usual.
    for (const v1::Trial& trial : experiment.trials()) {
      // Ended before the restart: thinned a retention period from now (idempotent if done).
      if (IsTerminal(trial.state())) finished_.push_back({now, trial.id()});
      if (!Live(trial.state())) continue;
      for (const v1::PlacementSlice& slice : trial.placement().slices()) {
        registry_->Expect(slice.worker_id(), now);
      }
    }
    const std::string id = experiment.id();
    experiments_[id] = std::move(experiment);
    Index(experiments_[id]);
  }
  summaries_ = *std::move(summaries);
  return absl::OkStatus();
}

void TrialLifecycle::Reserve(v1::Experiment& experiment) {
  experiment.set_id(absl::StrCat("exp-", next_sequence_++));
  for (int i = 0; i < experiment.trials_size(); ++i) {
    v1::Trial& trial = *experiment.mutable_trials(i);
    trial.set_id(absl::StrCat(experiment.id(), "-", i));
    trial.set_experiment_id(experiment.id());
  }
  // An inference trial of checkpoint_variant loads that variant's trial with its seed and grid
  // point: its run directory, named by its id, in the workers' checkpoint store.
  std::map<std::string, std::string> id_of;  // variant, seed, grid point -> trial id
  const auto key = [](const std::string& variant, const v1::Trial& trial) {
    std::string k = absl::StrCat(variant, "\n", trial.seed());
    for (const auto& [path, value] : trial.grid_point()) absl::StrAppend(&k, "\n", path, "=", value);
    return k;
  };
  for (const v1::Trial& trial : experiment.trials()) id_of[key(trial.variant(), trial)] = trial.id();
  for (v1::Trial& trial : *experiment.mutable_trials()) {
    v1::InferenceSpec& inference = *trial.mutable_spec()->mutable_inference();
    if (inference.checkpoint_variant().empty()) continue;
    auto it = id_of.find(key(inference.checkpoint_variant(), trial));
    // Validation made the variant exist; expansion gives it every seed and grid point.
    if (it != id_of.end()) inference.set_checkpoint_path(it->second);
  }
  id_by_name_[experiment.spec().name()] = experiment.id();
}

const v1::Experiment* TrialLifecycle::Commit(v1::Experiment experiment) {
  const std::string id = experiment.id();
  sequence_[id] = std::stoll(id.substr(4));
  experiments_[id] = std::move(experiment);
  Index(experiments_[id]);
  return &experiments_[id];
}

void TrialLifecycle::Unreserve(const v1::Experiment& experiment) {
  id_by_name_.erase(experiment.spec().name());  // its number stays unused
}

absl::StatusOr<v1::Experiment*> TrialLifecycle::Lookup(const std::string& id_or_name) {
  if (id_or_name.empty()) {
    return absl::InvalidArgumentError("experiment: required (an experiment id or name)");
  }
  auto it = experiments_.find(id_or_name);
  if (it != experiments_.end()) return &it->second;
  auto by_name = id_by_name_.find(id_or_name);
  // A reserved name whose experiment is still being written is not found yet.
  if (by_name != id_by_name_.end() && experiments_.count(by_name->second)) {
    return &experiments_[by_name->second];
  }
  return absl::NotFoundError(
      absl::StrCat("experiment '", id_or_name.substr(0, 80), "' not found"));
}

bool TrialLifecycle::NameTaken(const std::string& name, std::string* id) const {
  auto it = id_by_name_.find(name);
  if (it == id_by_name_.end()) return false;
  *id = it->second;
  return true;
}

v1::Trial* TrialLifecycle::FindTrial(const std::string& trial_id) {
  auto it = trials_.find(trial_id);
  if (it == trials_.end()) return nullptr;
  return experiments_[it->second.experiment_id].mutable_trials(it->second.index);
}

int TrialLifecycle::MaxRestarts(const v1::Trial& trial) const {
  return experiments_.at(trial.experiment_id()).spec().max_restarts();
}

PendingTrial TrialLifecycle::ToPending(const v1::Trial& trial) const {
  PendingTrial p;
  const std::string& experiment_id = trial.experiment_id();
  p.id = trial.id();
  p.priority = experiments_.at(experiment_id).spec().priority();
  // FIFO across experiments, then trial order within one.
  const int index = trials_.at(trial.id()).index;
  p.sequence = sequence_.at(experiment_id) * 1000000 + index;
  p.devices = trial.spec().resources().gpus_per_trial();
  p.max_nodes = trial.spec().resources().max_nodes();
  p.device = trial.spec().resources().device();
  return p;
}

void TrialLifecycle::UpdateExperimentState(const v1::Experiment& experiment, absl::Time now) {
  v1::ExperimentState& state = experiment_states_[experiment.id()];
  const v1::ExperimentState next = DeriveExperimentState(experiment_trial_counts_[experiment.id()]);
  state = next;
}

absl::Status TrialLifecycle::Transition(v1::Trial& trial, v1::TrialState to, absl::Time now,
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
  Apply(trial, std::move(next), now);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<const v1::Trial*>> TrialLifecycle::Place(
    const std::map<std::string, v1::Placement>& placements, absl::Time now) {
  std::vector<std::pair<v1::Trial*, v1::Trial>> next;
  for (const auto& [trial_id, placement] : placements) {
    v1::Trial* trial = FindTrial(trial_id);
    if (trial == nullptr || trial->state() != v1::TRIAL_STATE_PENDING ||
        !registry_->CanBook(placement, now)) {
      continue;  // canceled, or its worker went away, while the pass was deciding
    }
    v1::Trial& placed = next.emplace_back(trial, *trial).second;
    absl::Status status = ApplyTransition(
        placed, v1::TRIAL_STATE_SCHEDULED, now,
        absl::StrCat("placed on ", placement.slices_size(), " worker(s)"));
    if (!status.ok()) return status;
    *placed.mutable_placement() = placement;
  }
  return WriteAndApply(next, now);
}

absl::StatusOr<std::vector<const v1::Trial*>> TrialLifecycle::WriteAndApply(
    std::vector<std::pair<v1::Trial*, v1::Trial>>& next, absl::Time now) {
  std::vector<const v1::Trial*> rows;
  for (const auto& entry : next) rows.push_back(&entry.second);
  if (absl::Status status = store_->SaveTrials(rows); !status.ok()) return status;
  std::vector<const v1::Trial*> done;
  for (auto& [trial, changed] : next) {
    Apply(*trial, std::move(changed), now);
    done.push_back(trial);
  }
  return done;
}

void TrialLifecycle::Apply(v1::Trial& trial, v1::Trial next, absl::Time now) {
  const v1::TrialState from = trial.state();
  const v1::TrialState to = next.state();
  trial = std::move(next);
  --trial_counts_[from];
  ++trial_counts_[to];
  --experiment_trial_counts_[trial.experiment_id()][from];
  ++experiment_trial_counts_[trial.experiment_id()][to];
  if (IsTerminal(to) && !IsTerminal(from)) finished_.push_back({now, trial.id()});
  if (from == v1::TRIAL_STATE_PENDING) pending_.erase(trial.id());
  if (to == v1::TRIAL_STATE_PENDING) {
    pending_[trial.id()] = ToPending(trial);
    new_pending_ = true;
  }
  if (to == v1::TRIAL_STATE_SCHEDULED) {
    registry_->Book(trial.id(), trial.placement());
    metrics_->ObserveSchedulingLatency(std::max(0.0, Unix(now) - PendingSince(trial)));
  }
  if (!Live(to)) {
    registry_->Release(trial.id());
    running_slices_.erase(trial.id());
  }
  if (to == v1::TRIAL_STATE_PENDING && Live(from)) metrics_->IncrementRestarts();
  // A trial that ended may free (or fail) one waiting for its checkpoint.
  if (IsTerminal(to) && !IsTerminal(from) && !waits_for_.empty()) new_pending_ = true;

  const v1::Experiment& experiment = experiments_.at(trial.experiment_id());
  UpdateExperimentState(experiment, now);
  if (hub_->Watched(experiment.id())) {
    const bool finished = Finished(experiment_states_[experiment.id()]);
    v1::Experiment view;
    if (finished) view = ExperimentView(experiment, true, false);
    hub_->TrialChanged(trial, finished ? &view : nullptr);
  }
}

absl::Status TrialLifecycle::RestartOrFail(v1::Trial& trial, absl::Time now,
                                           const std::string& reason, bool retryable,
                                           int exit_code, const v1::TrialSpec* next_spec) {
  const auto record_exit = [exit_code, next_spec](v1::Trial& t) {
    if (exit_code != 0) t.set_exit_code(exit_code);
    if (next_spec != nullptr) *t.mutable_spec() = *next_spec;
  };
  const int restarts_used = trial.attempt() - 1;
  if (retryable && (next_spec != nullptr || restarts_used < MaxRestarts(trial))) {
    // Where the next attempt finds its checkpoints: said here, so nobody expects a resume that
    // cannot happen. Rank 0's worker writes them.
    std::string resume = "starts from step 0 (it has no placement)";
    if (trial.placement().slices_size() > 0) {
      const std::string& writer = trial.placement().slices(0).worker_id();
      const v1::WorkerInventory* inventory = registry_->Inventory(writer);
      if (inventory != nullptr && inventory->checkpoint_store_shared()) {
        resume = absl::StrCat("resumes from its last checkpoint in the shared checkpoint store ",
                              inventory->checkpoint_store());
      } else {
        resume = absl::StrCat("its checkpoints are local to worker ", writer,
                              ": it resumes from them only if placed there again, else from "
                              "step 0");
      }
    }
    return Transition(trial, v1::TRIAL_STATE_PENDING, now,
                      absl::StrCat(reason, "; restarting (attempt ", trial.attempt() + 1, "; ",
                                   resume, ")"),
                      record_exit);
  }
  return Transition(trial, v1::TRIAL_STATE_FAILED, now,
                    retryable ? absl::StrCat(reason, "; no restarts left (max_restarts ",
                                             MaxRestarts(trial), ")")
                              : absl::StrCat(reason, " (not retried: the same spec and seed "
                                                     "would fail the same way)"),
                    record_exit);
}

absl::Status TrialLifecycle::HandleExit(v1::Trial& trial, const std::string& worker_id,
                                        int exit_code, const std::string& reason,
                                        absl::Time now) {
  const int slice = SliceOf(trial.placement(), worker_id);
  if (exit_code == 0) {
    // Rank 0's slice decides success: it evaluates, writes the summary and the last checkpoint.
    if (slice != 0) {
      running_slices_[trial.id()].erase(worker_id);
      return absl::OkStatus();
    }
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
  std::string why = absl::StrCat(ExitName(exit_code), " on worker ", worker_id,
                                 reason.empty() ? "" : ": ", reason);
  v1::TrialSpec smaller = trial.spec();
  if (exit_code == v1::TRAINER_EXIT_OUT_OF_MEMORY && HalveMicroBatch(smaller)) {
    absl::StrAppend(&why, "; retrying with micro-batch ", smaller.train().batch_size(), " x ",
                    smaller.train().grad_accum_steps(), " accumulation steps");
    return RestartOrFail(trial, now, why, /*retryable=*/true, exit_code, &smaller);
  }
  return RestartOrFail(trial, now, why, RetryableExit(exit_code), exit_code);
}

absl::Status TrialLifecycle::Cancel(v1::Experiment& experiment, const std::string& reason,
                                    absl::Time now, std::vector<std::string>* workers) {
  // One write for all of them: a 10,000-trial experiment is one transaction, not 10,000.
  std::vector<std::pair<v1::Trial*, v1::Trial>> next;
  for (v1::Trial& trial : *experiment.mutable_trials()) {
    if (IsTerminal(trial.state())) continue;
    for (const v1::PlacementSlice& slice : trial.placement().slices()) {
      workers->push_back(slice.worker_id());
    }
    v1::Trial& canceled = next.emplace_back(&trial, trial).second;
    if (absl::Status s = ApplyTransition(canceled, v1::TRIAL_STATE_CANCELED, now, reason);
        !s.ok()) {
      return s;
    }
  }
  return WriteAndApply(next, now).status();
}

absl::Status TrialLifecycle::LoseWorker(const std::string& worker_id, const std::string& why,
                                        absl::Time now) {
  for (const std::string& trial_id : registry_->TrialsOn(worker_id)) {
    v1::Trial* trial = FindTrial(trial_id);
    if (trial == nullptr || !Live(trial->state())) continue;
    if (absl::Status s = RestartOrFail(*trial, now, why, /*retryable=*/true, 0); !s.ok()) return s;
  }
  return absl::OkStatus();
}

bool TrialLifecycle::SliceRunning(const v1::Trial& trial, const std::string& worker_id) {
  std::set<std::string>& running = running_slices_[trial.id()];
  running.insert(worker_id);
  return static_cast<int>(running.size()) == trial.placement().slices_size();
}

bool TrialLifecycle::IsSliceRunning(const std::string& trial_id,
                                    const std::string& worker_id) const {
  auto it = running_slices_.find(trial_id);
  return it != running_slices_.end() && it->second.count(worker_id) > 0;
}

absl::Status TrialLifecycle::SaveSummary(const std::string& trial_id,
                                         const v1::TrainerSummary& summary) {
  if (absl::Status status = store_->SaveSummary(trial_id, summary); !status.ok()) return status;
  summaries_[trial_id] = summary;
  return absl::OkStatus();
}

const v1::TrainerSummary* TrialLifecycle::Summary(const std::string& trial_id) const {
  auto it = summaries_.find(trial_id);
  return it == summaries_.end() ? nullptr : &it->second;
}

std::vector<PendingTrial> TrialLifecycle::Pending() const {
  std::vector<PendingTrial> pending;
  pending.reserve(pending_.size());
  for (const auto& [id, p] : pending_) {
    if (auto wait = waits_for_.find(id); wait != waits_for_.end()) {
      auto ref = trials_.find(wait->second);
      if (ref == trials_.end()) continue;
      const v1::Trial& source =
          experiments_.at(ref->second.experiment_id).trials(ref->second.index);
      if (source.state() != v1::TRIAL_STATE_COMPLETED) continue;
    }
    pending.push_back(p);
  }
  return pending;
}

absl::Status TrialLifecycle::ResolveCheckpointWaits(absl::Time now) {
  for (const auto& [id, source_id] : waits_for_) {
    if (pending_.count(id) == 0) continue;
    v1::Trial* trial = FindTrial(id);
    const v1::Trial* source = FindTrial(source_id);
    if (trial == nullptr) continue;
    if (source == nullptr) {
      absl::Status s = Transition(*trial, v1::TRIAL_STATE_FAILED, now,
                                  absl::StrCat("its checkpoint's trial ", source_id, " is unknown"));
      if (!s.ok()) return s;
    } else if (IsTerminal(source->state()) && source->state() != v1::TRIAL_STATE_COMPLETED) {
      absl::Status s = Transition(
          *trial, v1::TRIAL_STATE_FAILED, now,
          absl::StrCat("trial ", source_id, ", whose checkpoint it loads, ended ",
                       TrialStateName(source->state()), " (not retried)"));
      if (!s.ok()) return s;
    } else if (source->state() != v1::TRIAL_STATE_COMPLETED) {
      SetWaiting(id, absl::StrCat("waiting for trial ", source_id,
                                  " (inference.checkpoint_variant) to complete"));
    }
  }
  return absl::OkStatus();
}

void TrialLifecycle::SetWaiting(const std::string& trial_id, const std::string& why) {
  // Memory only: a pass rewrites thousands of these, and the next pass after a restart says it
  // again; the row picks it up with the trial's next transition.
  if (v1::Trial* trial = FindTrial(trial_id)) trial->set_status_message(why);
}

bool TrialLifecycle::TakeNewPending() { return std::exchange(new_pending_, false); }

std::map<std::string, int> TrialLifecycle::TrialCounts() const {
  std::map<std::string, int> counts;
  for (const auto& [state, n] : trial_counts_) counts[TrialStateName(state)] += n;
  return counts;
}

std::map<std::string, int> TrialLifecycle::ExperimentCounts() const {
  std::map<std::string, int> counts;
  for (const auto& [id, state] : experiment_states_) ++counts[ExperimentStateName(state)];
  return counts;
}

std::vector<const v1::Trial*> TrialLifecycle::TakeFinishedBefore(absl::Time cutoff) {
  std::vector<const v1::Trial*> trials;
  while (!finished_.empty() && finished_.front().first <= cutoff) {
    if (const v1::Trial* trial = FindTrial(finished_.front().second)) trials.push_back(trial);
    finished_.pop_front();
  }
  return trials;
}

}  // namespace gauntlet
