#ifndef GAUNTLET_SERVER_ORDERED_STORE_H_
#define GAUNTLET_SERVER_ORDERED_STORE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/store.h"

namespace gauntlet {

// A Store that writes in one order, so the controller can let go of its own lock before a slow
// write without a stale trial row overtaking a newer one: a writer takes its turn while it still
// holds the lock that ordered its change (BeginWrite), releases that lock, writes, and ends its
// turn. Every write method of the Store interface takes the turn itself. Reads pass straight
// through. Thread-safe when `inner` is.
class OrderedStore final : public Store {
 public:
  explicit OrderedStore(Store* inner) : inner_(inner) {}

  // Hand-over-hand: BeginWrite() under the caller's lock, then the caller unlocks, calls
  // SaveMetricsInTurn, then EndWrite().
  void BeginWrite() ABSL_EXCLUSIVE_LOCK_FUNCTION(turn_) { turn_.Lock(); }
  absl::Status SaveMetricsInTurn(const std::vector<v1::MetricPoint>& points,
                                 const std::vector<const v1::Trial*>& trials)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(turn_) {
    return inner_->SaveMetrics(points, trials);
  }
  void EndWrite() ABSL_UNLOCK_FUNCTION(turn_) { turn_.Unlock(); }

  absl::Status CreateExperiment(const v1::Experiment& experiment) override;
  absl::Status SaveTrial(const v1::Trial& trial, const v1::TrialTransition* transition) override;
  absl::Status SaveTrials(const std::vector<const v1::Trial*>& trials) override;
  absl::Status SaveMetrics(const std::vector<v1::MetricPoint>& points,
                           const std::vector<const v1::Trial*>& trials) override;
  absl::Status SaveSummary(const std::string& trial_id,
                           const v1::TrainerSummary& summary) override;
  absl::Status AppendLogs(const std::vector<v1::LogChunk>& chunks) override;
  absl::Status DownsampleMetrics(const std::string& trial_id, int max_points_per_name) override;
  absl::StatusOr<std::vector<v1::Experiment>> LoadExperiments() override {
    return inner_->LoadExperiments();
  }
  absl::StatusOr<std::map<std::string, v1::TrainerSummary>> LoadSummaries() override {
    return inner_->LoadSummaries();
  }
  absl::StatusOr<std::vector<v1::MetricPoint>> LoadMetrics(const std::string& trial_id,
                                                           const std::string& name) override {
    return inner_->LoadMetrics(trial_id, name);
  }
  absl::StatusOr<std::vector<StoredLogChunk>> ReadLogs(const std::string& trial_id, int rank,
                                                       int64_t after_id) override {
    return inner_->ReadLogs(trial_id, rank, after_id);
  }

 private:
  Store* const inner_;
  absl::Mutex turn_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_ORDERED_STORE_H_
