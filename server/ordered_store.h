#ifndef GAUNTLET_SERVER_ORDERED_STORE_H_
#define GAUNTLET_SERVER_ORDERED_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/store.h"

namespace gauntlet {

// A Store whose writes all go through one queue, written in the order they were queued, so the
// controller can queue a write while it holds its lock (that fixes the order) and wait for it
// after letting go: a trial row written with a batch of metric points can then never overtake a
// later transition of that trial, and no lock of the controller is held while SQLite works.
// There is no writer thread: a waiter whose write is still queued while nobody writes becomes
// the writer and writes everything queued, others' writes included (leader/follower group
// commit). An uncontended write thus costs no thread hand-off (two wake-ups of a writer thread
// were most of a metric batch's tail on a busy machine), and metric batches queued while one
// is written go out together as one transaction. Every write method of the Store interface
// queues and waits; reads pass straight through. Every ticket must be waited for. Thread-safe
// when `inner` is.
class OrderedStore final : public Store {
 public:
  explicit OrderedStore(Store* inner) : inner_(inner) {}

  // Queues the write of a new experiment, which must outlive Wait(ticket).
  uint64_t QueueCreate(const v1::Experiment& experiment);
  // Queues a metric write; Wait(ticket) returns its outcome.
  uint64_t QueueMetrics(std::vector<v1::MetricPoint> points, std::vector<v1::Trial> trials);
  absl::Status Wait(uint64_t ticket);

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
  struct Job {
    uint64_t ticket = 0;
    // A metric batch (merged with its neighbours), or any other write.
    std::vector<v1::MetricPoint> points;
    std::vector<v1::Trial> trials;
    std::function<absl::Status()> write;
  };
  uint64_t Queue(Job job);
  // Queues `write` and waits for it (the Store interface's writes).
  absl::Status Run(std::function<absl::Status()> write);
  // Writes `jobs` in order; ticket -> outcome.
  std::map<uint64_t, absl::Status> Write(std::deque<Job>& jobs);

  Store* const inner_;
  absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, absl::Status> done_ ABSL_GUARDED_BY(mu_);
  // Whether a waiter is writing now (one at a time keeps the queue's order).
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_ORDERED_STORE_H_
