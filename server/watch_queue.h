#ifndef GAUNTLET_SERVER_WATCH_QUEUE_H_
#define GAUNTLET_SERVER_WATCH_QUEUE_H_

#include <cstddef>
#include <deque>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"

namespace gauntlet {

// Events for one WatchExperiment stream: the controller pushes, the RPC thread pops. Bounded so a
// stalled client cannot grow the coordinator's memory: metric points are dropped first when full
// (state changes and the final event are always kept).
class WatchQueue {
 public:
  explicit WatchQueue(bool include_metrics, size_t max_metric_backlog = 10000)
      : include_metrics_(include_metrics), max_metric_backlog_(max_metric_backlog) {}

  bool include_metrics() const { return include_metrics_; }
  void Push(v1::WatchEvent event);
  // No more events after the queued ones (the experiment finished).
  void Close();
  // The next event, or nullopt after `timeout` or when closed and drained (see closed_and_drained()).
  std::optional<v1::WatchEvent> Pop(absl::Duration timeout);
  bool closed_and_drained() const;

 private:
  const bool include_metrics_;
  const size_t max_metric_backlog_;
  mutable absl::Mutex mu_;
  std::deque<v1::WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  size_t metric_events_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WATCH_QUEUE_H_
