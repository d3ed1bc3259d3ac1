#include "server/ordered_store.h"

namespace gauntlet {

absl::Status OrderedStore::CreateExperiment(const v1::Experiment& experiment) {
  absl::MutexLock lock(&turn_);
  return inner_->CreateExperiment(experiment);
}

absl::Status OrderedStore::SaveTrial(const v1::Trial& trial,
                                     const v1::TrialTransition* transition) {
  absl::MutexLock lock(&turn_);
  return inner_->SaveTrial(trial, transition);
}

absl::Status OrderedStore::SaveTrials(const std::vector<const v1::Trial*>& trials) {
  absl::MutexLock lock(&turn_);
  return inner_->SaveTrials(trials);
}

absl::Status OrderedStore::SaveMetrics(const std::vector<v1::MetricPoint>& points,
                                       const std::vector<const v1::Trial*>& trials) {
  absl::MutexLock lock(&turn_);
  return inner_->SaveMetrics(points, trials);
}

absl::Status OrderedStore::SaveSummary(const std::string& trial_id,
                                       const v1::TrainerSummary& summary) {
  absl::MutexLock lock(&turn_);
  return inner_->SaveSummary(trial_id, summary);
}

absl::Status OrderedStore::AppendLogs(const std::vector<v1::LogChunk>& chunks) {
  // Logs rows are append-only and never overtake a trial row: no turn needed.
  return inner_->AppendLogs(chunks);
}

absl::Status OrderedStore::DownsampleMetrics(const std::string& trial_id,
                                             int max_points_per_name) {
  return inner_->DownsampleMetrics(trial_id, max_points_per_name);
}

}  // namespace gauntlet
