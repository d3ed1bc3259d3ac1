#include "server/watch_hub.h"

#include <algorithm>
#include <utility>

namespace gauntlet {

std::shared_ptr<WatchQueue> WatchHub::Ended(const v1::Experiment& final, bool include_metrics) {
  auto queue = std::make_shared<WatchQueue>(include_metrics);
  v1::WatchEvent end;
  *end.mutable_finished() = final;
  queue->Push(std::move(end));
  queue->Close();
  return queue;
}

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

void WatchHub::LogsAppended() {
  absl::MutexLock lock(&logs_mu_);
  ++logs_version_;
}

int64_t WatchHub::AwaitLogs(int64_t seen_version, absl::Duration timeout) {
  absl::MutexLock lock(&logs_mu_);
  auto changed = [&]() ABSL_SHARED_LOCKS_REQUIRED(logs_mu_) {
    return logs_version_ != seen_version;
  };
  logs_mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return logs_version_;
}

}  // namespace gauntlet
