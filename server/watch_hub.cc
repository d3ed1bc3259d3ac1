#include "server/watch_hub.h"

#include <algorithm>

namespace gauntlet {

std::shared_ptr<WatchQueue> WatchHub::Add(const std::string& experiment_id, bool include_metrics) {
  auto queue = std::make_shared<WatchQueue>(include_metrics);
  absl::MutexLock lock(&mu_);
  auto& list = watchers_[experiment_id];
  // Drop streams that have gone away.
  list.erase(std::remove_if(list.begin(), list.end(),
                            [](const std::weak_ptr<WatchQueue>& w) { return w.expired(); }),
             list.end());
  list.push_back(queue);
  return queue;
}

bool WatchHub::Watched(const std::string& experiment_id) const {
  absl::MutexLock lock(&mu_);
  return watchers_.count(experiment_id) > 0;
}

void WatchHub::TrialChanged(const v1::Trial& trial, const v1::Experiment* finished) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(trial.experiment_id());
  if (it == watchers_.end()) return;
  v1::WatchEvent update;
  *update.mutable_trial_update() = trial;
  v1::WatchEvent end;
  if (finished != nullptr) *end.mutable_finished() = *finished;
  for (const std::weak_ptr<WatchQueue>& weak : it->second) {
    if (std::shared_ptr<WatchQueue> queue = weak.lock()) {
      queue->Push(update);
      if (finished != nullptr) {
        queue->Push(end);
        queue->Close();
      }
    }
  }
  if (finished != nullptr) watchers_.erase(it);
}

void WatchHub::Metric(const std::string& experiment_id, const v1::MetricPoint& point) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(experiment_id);
  if (it == watchers_.end()) return;
  v1::WatchEvent event;
  *event.mutable_metric() = point;
  for (const auto& weak : it->second) {
    if (auto queue = weak.lock()) queue->Push(event);
  }
}

}  // namespace gauntlet
