#include "server/sqlite_store.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gauntlet {
namespace {

std::string TempDb(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/" + name;
  std::remove(path.c_str());
  return path;
}

v1::Experiment MakeExperiment(const std::string& id, const std::string& name, int trials) {
  v1::Experiment e;
  e.set_id(id);
  e.mutable_spec()->set_name(name);
  e.set_spec_yaml("name: " + name);
  for (int i = 0; i < trials; ++i) {
    v1::Trial* t = e.add_trials();
    t->set_id(id + "-" + std::to_string(i));
    t->set_experiment_id(id);
    t->set_state(v1::TRIAL_STATE_PENDING);
    t->set_attempt(1);
  }
  return e;
}

TEST(SqliteStoreTest, SurvivesReopen) {
  const std::string path = TempDb("reopen.db");
  {
    auto store = SqliteStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateExperiment(MakeExperiment("exp-1", "one", 12)).ok());
    v1::Trial trial = MakeExperiment("exp-1", "one", 1).trials(0);
    trial.set_state(v1::TRIAL_STATE_SCHEDULED);
    v1::TrialTransition transition;
    transition.set_from(v1::TRIAL_STATE_PENDING);
    transition.set_to(v1::TRIAL_STATE_SCHEDULED);
    transition.set_reason("placed");
    ASSERT_TRUE((*store)->SaveTrial(trial, &transition).ok());
    v1::MetricPoint point;
    point.set_trial_id(trial.id());
    point.set_name("val_loss");
    point.set_value(2.5);
    point.set_step(10);
    point.set_train_seconds(3.0);
    (*trial.mutable_latest_metrics())["val_loss"] = 2.5;
    ASSERT_TRUE((*store)->SaveMetrics({point}, {&trial}).ok());
    v1::TrainerSummary summary;
    summary.set_steps(10);
    ASSERT_TRUE((*store)->SaveSummary(trial.id(), summary).ok());
    v1::LogChunk chunk;
    chunk.set_trial_id(trial.id());
    chunk.set_text("step 1\n");
    ASSERT_TRUE((*store)->AppendLogs({chunk, chunk}).ok());
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto experiments = (*store)->LoadExperiments();
  ASSERT_TRUE(experiments.ok()) << experiments.status();
  ASSERT_EQ(experiments->size(), 1u);
  const v1::Experiment& e = experiments->front();
  EXPECT_EQ(e.spec_yaml(), "name: one");
  ASSERT_EQ(e.trials_size(), 12);
  // Ordered by index, not by string id ("exp-1-10" < "exp-1-2").
  EXPECT_EQ(e.trials(2).id(), "exp-1-2");
  EXPECT_EQ(e.trials(11).id(), "exp-1-11");
  EXPECT_EQ(e.trials(0).state(), v1::TRIAL_STATE_SCHEDULED);
  ASSERT_EQ(e.trials(0).transitions_size(), 1);
  EXPECT_EQ(e.trials(0).transitions(0).reason(), "placed");
  EXPECT_EQ(e.trials(0).latest_metrics().at("val_loss"), 2.5);
  auto points = (*store)->LoadMetrics("exp-1-0", "val_loss");
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), 1u);
  EXPECT_EQ((*points)[0].step(), 10);
  EXPECT_EQ((*points)[0].train_seconds(), 3.0);
  EXPECT_EQ((*store)->LoadSummaries()->at("exp-1-0").steps(), 10);
  auto logs = (*store)->ReadLogs("exp-1-0", 0, 0);
  ASSERT_EQ(logs->size(), 2u);
  EXPECT_EQ((*store)->ReadLogs("exp-1-0", 0, (*logs)[0].id)->size(), 1u);
}

TEST(SqliteStoreTest, DuplicateNameIsAlreadyExistsAndAtomic) {
  auto store = SqliteStore::Open(TempDb("dup.db"));
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->CreateExperiment(MakeExperiment("exp-1", "same", 1)).ok());
  absl::Status status = (*store)->CreateExperiment(MakeExperiment("exp-2", "same", 3));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  // The failed experiment left no trials behind.
  auto experiments = (*store)->LoadExperiments();
  ASSERT_EQ(experiments->size(), 1u);
  EXPECT_EQ(experiments->front().trials_size(), 1);
}

TEST(SqliteStoreTest, UnopenablePathNamesTheFlag) {
  auto store = SqliteStore::Open("/nonexistent-dir/x/y.db");
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("--db"), std::string::npos) << store.status();
}

TEST(SqliteStoreTest, DownsampleKeepsEvenlySpacedPointsPerNameWithBothEnds) {
  auto store = SqliteStore::Open(TempDb("thin.db"));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateExperiment(MakeExperiment("exp-1", "one", 2)).ok());
  std::vector<v1::MetricPoint> points;
  for (const std::string trial : {"exp-1-0", "exp-1-1"}) {
    for (int step = 0; step < 1001; ++step) {
      for (const std::string name : {"train_loss", "lr"}) {
        v1::MetricPoint& p = points.emplace_back();
        p.set_trial_id(trial);
        p.set_name(name);
        p.set_step(step);
      }
    }
  }
  ASSERT_TRUE((*store)->SaveMetrics(points, {}).ok());
  ASSERT_TRUE((*store)->DownsampleMetrics("exp-1-0", 11).ok());
  for (const std::string name : {"train_loss", "lr"}) {
    auto kept = (*store)->LoadMetrics("exp-1-0", name);
    ASSERT_TRUE(kept.ok());
    ASSERT_EQ(kept->size(), 11u) << name;
    for (int i = 0; i < 11; ++i) EXPECT_EQ(kept->at(i).step(), i * 100) << name;
  }
  // Idempotent, and other trials are untouched.
  ASSERT_TRUE((*store)->DownsampleMetrics("exp-1-0", 11).ok());
  EXPECT_EQ((*store)->LoadMetrics("exp-1-0", "lr")->size(), 11u);
  EXPECT_EQ((*store)->LoadMetrics("exp-1-1", "lr")->size(), 1001u);
  EXPECT_FALSE((*store)->DownsampleMetrics("exp-1-1", 1).ok());
}

std::vector<v1::MetricPoint> Points(const std::string& trial_id, int first_step, int n) {
  std::vector<v1::MetricPoint> points;
  for (int step = first_step; step < first_step + n; ++step) {
    v1::MetricPoint& p = points.emplace_back();
    p.set_trial_id(trial_id);
    p.set_name("train_loss");
    p.set_step(step);
    p.set_value(1.0 / (1 + step));
  }
  return points;
}

int64_t FileBytes(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

TEST(SqliteStoreTest, CheckpointsRunInTheBackgroundAndKeepTheLogSmall) {
  const std::string path = TempDb("checkpoint.db");
  constexpr int kBatches = 40;
  constexpr int kPerBatch = 2000;
  {
    SqliteStoreOptions options;
    options.checkpoint_pages = 16;
    options.max_wal_pages = 1 << 30;
    auto store = SqliteStore::Open(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateExperiment(MakeExperiment("exp-1", "one", 1)).ok());
    for (int i = 0; i < kBatches; ++i) {
      ASSERT_TRUE((*store)->SaveMetrics(Points("exp-1-0", i * kPerBatch, kPerBatch), {}).ok());
      // Each batch is over 16 pages, so each commit asks the checkpointer for one.
      ASSERT_TRUE((*store)->AwaitCheckpoints(i + 1, absl::Seconds(30))) << i;
    }
    // The log's file size is not asserted: whether a commit can rewind it depends on whether the
    // background checkpoint finished first, which is timing (it failed at load average 10).
  }
  auto store = SqliteStore::Open(path);
  ASSERT_TRUE(store.ok());
  auto points = (*store)->LoadMetrics("exp-1-0", "train_loss");
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), static_cast<size_t>(kBatches * kPerBatch));
  for (int i = 0; i < kBatches * kPerBatch; ++i) ASSERT_EQ((*points)[i].step(), i);
}

TEST(SqliteStoreTest, ACommitCheckpointsItselfWhenTheBackgroundFallsTooFarBehind) {
  const std::string path = TempDb("fallback.db");
  // The background is never asked; the bound alone keeps the log in check.
  SqliteStoreOptions options;
  options.checkpoint_pages = 1 << 30;
  options.max_wal_pages = 32;
  auto store = SqliteStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateExperiment(MakeExperiment("exp-1", "one", 1)).ok());
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE((*store)->SaveMetrics(Points("exp-1-0", i * 2000, 2000), {}).ok());
  }
  EXPECT_EQ((*store)->checkpoints(), 0);
  EXPECT_GT(FileBytes(path), 2 * FileBytes(path + "-wal"));
  EXPECT_EQ((*store)->LoadMetrics("exp-1-0", "train_loss")->size(), 80000u);
}

}  // namespace
}  // namespace gauntlet
