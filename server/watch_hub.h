#ifndef GAUNTLET_SERVER_WATCH_HUB_H_
#define GAUNTLET_SERVER_WATCH_HUB_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "server/watch_queue.h"

namespace gauntlet {

// The open WatchExperiment streams, by experiment: fans trial changes and metric points out to
// their queues and closes them when the experiment ends. Thread-safe.
class WatchHub {
 public:
  // A stream of an experiment that already ended: `final` and the end, nothing more.
  static std::shared_ptr<WatchQueue> Ended(const v1::Experiment& final, bool include_metrics);
  // A new stream of `experiment_id`.
  std::shared_ptr<WatchQueue> Add(const std::string& experiment_id, bool include_metrics);
  bool Watched(const std::string& experiment_id) const;
  // A trial changed. `finished` (the final experiment view) when the experiment just ended: the
  // streams get it and close.
  void TrialChanged(const v1::Trial& trial, const v1::Experiment* finished);
  void Metric(const std::string& experiment_id, const v1::MetricPoint& point);

  // Log followers: every stored batch of log lines bumps a version; AwaitLogs blocks until it
  // differs from `seen_version` or `timeout` passed, and returns it.
  void LogsAppended();
  int64_t AwaitLogs(int64_t seen_version, absl::Duration timeout);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<std::weak_ptr<WatchQueue>>> watchers_ ABSL_GUARDED_BY(mu_);
  absl::Mutex logs_mu_;
  int64_t logs_version_ ABSL_GUARDED_BY(logs_mu_) = 0;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WATCH_HUB_H_
