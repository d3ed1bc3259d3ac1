#include "server/ordered_store.h"

#include <atomic>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

// Records every write the OrderedStore makes ("create exp-1", "metrics 2,3 rows t:3") and
// checks that no two overlap.
class RecordingStore final : public Store {
 public:
  std::function<void()> before_write;
  bool throw_once = false;

  std::vector<std::string> log() {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  int64_t points() {
    absl::MutexLock lock(&mu_);
    return points_;
  }
  bool overlapped() const { return overlapped_; }

  absl::Status CreateExperiment(const v1::Experiment& e) override {
    return Record(absl::StrCat("create ", e.id()));
  }
  absl::Status SaveTrial(const v1::Trial& t, const v1::TrialTransition*) override {
    return Record(absl::StrCat("trial ", t.id()));
  }
  absl::Status SaveTrials(const std::vector<const v1::Trial*>&) override {
    return Record("trials");
  }
  absl::Status SaveMetrics(const std::vector<v1::MetricPoint>& points,
                           const std::vector<const v1::Trial*>& trials) override {
    std::string entry = "metrics";
    for (size_t i = 0; i < points.size(); ++i) {
      absl::StrAppend(&entry, i == 0 ? " " : ",", points[i].step());
    }
    absl::StrAppend(&entry, " rows");
    for (const v1::Trial* t : trials) absl::StrAppend(&entry, " ", t->id(), ":", t->latest_step());
    {
      absl::MutexLock lock(&mu_);
      points_ += static_cast<int64_t>(points.size());
    }
    return Record(entry);
  }
  absl::Status SaveSummary(const std::string&, const v1::TrainerSummary&) override {
    return Record("summary");
  }
  absl::Status AppendLogs(const std::vector<v1::LogChunk>&) override { return Record("logs"); }
  absl::Status DownsampleMetrics(const std::string&, int) override { return Record("thin"); }
  absl::StatusOr<std::vector<v1::Experiment>> LoadExperiments() override {
    return std::vector<v1::Experiment>();
  }
  absl::StatusOr<std::map<std::string, v1::TrainerSummary>> LoadSummaries() override {
    return std::map<std::string, v1::TrainerSummary>();
  }
  absl::StatusOr<std::vector<v1::MetricPoint>> LoadMetrics(const std::string&,
                                                           const std::string&) override {
    return std::vector<v1::MetricPoint>();
  }
  absl::StatusOr<std::vector<StoredLogChunk>> ReadLogs(const std::string&, int,
                                                       int64_t) override {
    return std::vector<StoredLogChunk>();
  }

 private:
  absl::Status Record(const std::string& entry) {
    if (in_flight_++ > 0) overlapped_ = true;
    if (before_write) before_write();
    {
      absl::MutexLock lock(&mu_);
      log_.push_back(entry);
    }
    --in_flight_;
    if (std::exchange(throw_once, false)) throw std::bad_alloc();
    return absl::OkStatus();
  }

  absl::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
  int64_t points_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> overlapped_{false};
};

std::vector<v1::MetricPoint> Steps(const std::string& trial_id, std::vector<int> steps) {
  std::vector<v1::MetricPoint> points;
  for (int step : steps) {
    v1::MetricPoint& p = points.emplace_back();
    p.set_trial_id(trial_id);
    p.set_name("train_loss");
    p.set_step(step);
  }
  return points;
}

v1::Trial Row(const std::string& id, int latest_step) {
  v1::Trial trial;
  trial.set_id(id);
  trial.set_latest_step(latest_step);
  return trial;
}

TEST(OrderedStoreTest, WritesInQueueOrderAndGroupsNeighbouringMetricBatches) {
  RecordingStore inner;
  OrderedStore store(&inner);
  absl::Notification entered, release;
  inner.before_write = [&] {
    if (entered.HasBeenNotified()) return;
    entered.Notify();
    release.WaitForNotification();
  };
  // The first batch's waiter becomes the writer and is held inside the write.
  std::thread first([&] {
    EXPECT_TRUE(store.Wait(store.QueueMetrics(Steps("t", {1}), {Row("t", 1)})).ok());
  });
  entered.WaitForNotification();
  const uint64_t second = store.QueueMetrics(Steps("t", {2}), {Row("t", 2)});
  const uint64_t third = store.QueueMetrics(Steps("t", {3}), {Row("t", 3), Row("u", 7)});
  v1::Experiment experiment;
  experiment.set_id("exp-1");
  const uint64_t create = store.QueueCreate(experiment);
  const uint64_t fourth = store.QueueMetrics(Steps("t", {4, 5}), {Row("t", 5)});
  release.Notify();
  first.join();
  // This waiter writes all four: two batches in one transaction (one row per trial, the
  // newest), the experiment, then the last batch; none overtakes another.
  EXPECT_TRUE(store.Wait(second).ok());
  EXPECT_TRUE(store.Wait(fourth).ok());
  EXPECT_TRUE(store.Wait(create).ok());
  EXPECT_TRUE(store.Wait(third).ok());
  EXPECT_EQ(inner.log(), (std::vector<std::string>{"metrics 1 rows t:1", "metrics 2,3 rows t:3 u:7",
                                                   "create exp-1", "metrics 4,5 rows t:5"}));
}

TEST(OrderedStoreTest, ConcurrentWritersAllLandOneAtATime) {
  RecordingStore inner;
  OrderedStore store(&inner);
  constexpr int kThreads = 8;
  constexpr int kWrites = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        const std::string id = absl::StrCat("t", t);
        if (i % 50 == 49) {
          EXPECT_TRUE(store.SaveTrial(Row(id, i), nullptr).ok());
        } else {
          EXPECT_TRUE(store.Wait(store.QueueMetrics(Steps(id, {i}), {Row(id, i)})).ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_FALSE(inner.overlapped());
  EXPECT_EQ(inner.points(), kThreads * (kWrites - kWrites / 50));
}

TEST(OrderedStoreTest, AWriteThatThrowsFailsItsBatchAndTheNextWriteWorks) {
  RecordingStore inner;
  OrderedStore store(&inner);
  inner.throw_once = true;
  const absl::Status failed = store.Wait(store.QueueMetrics(Steps("t", {1}), {}));
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal) << failed;
  EXPECT_TRUE(store.Wait(store.QueueMetrics(Steps("t", {2}), {})).ok());
  EXPECT_TRUE(store.SaveTrial(Row("t", 2), nullptr).ok());
}

}  // namespace
}  // namespace gauntlet
