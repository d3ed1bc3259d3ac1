#ifndef GAUNTLET_SERVER_WATCH_HUB_H_
#define GAUNTLET_SERVER_WATCH_HUB_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "server/watch_queue.h"

namespace gauntlet {

// The open WatchExperiment streams, by experiment: fans trial changes and metric points out to
// their queues and closes them when the experiment ends. Thread-safe.
class WatchHub {
 public:
  // A new stream of `experiment_id`.
  std::shared_ptr<WatchQueue> Add(const std::string& experiment_id, bool include_metrics);
  bool Watched(const std::string& experiment_id) const;
  // A trial changed. `finished` (the final experiment view) when the experiment just ended: the
  // streams get it and close.
  void TrialChanged(const v1::Trial& trial, const v1::Experiment* finished);
  void Metric(const std::string& experiment_id, const v1::MetricPoint& point);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<std::weak_ptr<WatchQueue>>> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WATCH_HUB_H_
