#include "server/watch_queue.h"

#include <utility>

namespace gauntlet {

void WatchQueue::Push(v1::WatchEvent event) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  if (event.has_metric()) {
    if (!include_metrics_ || metric_events_ >= max_metric_backlog_) return;
    ++metric_events_;
  }
  events_.push_back(std::move(event));
}

void WatchQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

std::optional<v1::WatchEvent> WatchQueue::Pop(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !events_.empty() || closed_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  if (events_.empty()) return std::nullopt;
  v1::WatchEvent event = std::move(events_.front());
  events_.pop_front();
  if (event.has_metric()) --metric_events_;
  return event;
}

bool WatchQueue::closed_and_drained() const {
  absl::MutexLock lock(&mu_);
  return closed_ && events_.empty();
}

}  // namespace gauntlet
