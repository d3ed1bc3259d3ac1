#include "server/metric_ingest.h"

#include <map>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace gauntlet {
namespace {

// Family name -> value of its one series of trial `trial_id`.
std::map<std::string, double> TrialGauges(const CoordinatorMetrics& metrics,
                                          const std::string& trial_id) {
  std::map<std::string, double> out;
  for (const prometheus::MetricFamily& family : metrics.registry()->Collect()) {
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "trial" && label.value == trial_id) out[family.name] = metric.gauge.value;
      }
    }
  }
  return out;
}

v1::MetricPoint Point(const std::string& trial_id, const std::string& name, int64_t step,
                      double value) {
  v1::MetricPoint p;
  p.set_trial_id(trial_id);
  p.set_name(name);
  p.set_step(step);
  p.set_value(value);
  p.set_tokens(step * 10);
  return p;
}

TEST(PublishMetricsTest, GaugesEndAtEachTrialsLastPointAndWatchersGetEveryPoint) {
  MetricBatch batch;
  batch.accepted = {Point("exp-1-0", "train_loss", 1, 3.0), Point("exp-1-0", "val_loss", 1, 2.9),
                    Point("exp-1-1", "train_loss", 7, 1.0), Point("exp-1-0", "train_loss", 2, 2.5),
                    Point("exp-1-0", "lr", 2, 0.1)};
  for (const char* id : {"exp-1-0", "exp-1-1"}) {
    v1::Trial& trial = batch.updated[id];
    trial.set_id(id);
    trial.set_experiment_id("exp-1");
  }
  CoordinatorMetrics metrics("test");
  WatchHub hub;
  std::shared_ptr<WatchQueue> watcher = hub.Add("exp-1", /*include_metrics=*/true);

  PublishMetrics(batch, metrics, hub);

  std::map<std::string, double> first = TrialGauges(metrics, "exp-1-0");
  EXPECT_EQ(first["gauntlet_trial_train_loss"], 2.5);
  EXPECT_EQ(first["gauntlet_trial_val_loss"], 2.9);
  EXPECT_EQ(first["gauntlet_trial_learning_rate"], 0.1);
  EXPECT_EQ(first["gauntlet_trial_step"], 2);
  EXPECT_EQ(first["gauntlet_trial_tokens"], 20);
  std::map<std::string, double> second = TrialGauges(metrics, "exp-1-1");
  EXPECT_EQ(second["gauntlet_trial_train_loss"], 1.0);
  EXPECT_EQ(second["gauntlet_trial_step"], 7);
  for (const v1::MetricPoint& sent : batch.accepted) {
    std::optional<v1::WatchEvent> event = watcher->Pop(absl::ZeroDuration());
    ASSERT_TRUE(event.has_value());
    EXPECT_EQ(event->metric().trial_id(), sent.trial_id());
    EXPECT_EQ(event->metric().step(), sent.step());
    EXPECT_EQ(event->metric().name(), sent.name());
  }
  EXPECT_FALSE(watcher->Pop(absl::ZeroDuration()).has_value());
}

}  // namespace
}  // namespace gauntlet
