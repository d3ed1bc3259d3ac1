#include "server/metrics.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace gauntlet {
namespace {

// The contract with the dashboards and alert rules: exactly these names.
const std::set<std::string> kContract = {
    "gauntlet_trial_train_loss", "gauntlet_trial_val_loss", "gauntlet_trial_val_loss_native",
    "gauntlet_trial_tokens_per_second", "gauntlet_trial_steps_per_second",
    "gauntlet_trial_step_time_seconds", "gauntlet_trial_mfu_ratio",
    "gauntlet_trial_gpu_memory_allocated_bytes", "gauntlet_trial_gpu_memory_reserved_bytes",
    "gauntlet_trial_gpu_memory_peak_bytes", "gauntlet_trial_layers_per_token",
    "gauntlet_trial_grad_norm", "gauntlet_trial_learning_rate", "gauntlet_trial_step",
    "gauntlet_trial_tokens", "gauntlet_trial_train_seconds",
    "gauntlet_trial_last_metric_unix_seconds", "gauntlet_trial_inference_prefill_seconds",
    "gauntlet_trial_inference_decode_tokens_per_second",
    "gauntlet_trial_inference_decode_bound_ratio",
    "gauntlet_trial_inference_kv_cache_bytes_per_token",
    "gauntlet_trial_inference_peak_memory_bytes", "gauntlet_experiments", "gauntlet_trials",
    "gauntlet_workers", "gauntlet_devices", "gauntlet_queue_depth",
    "gauntlet_scheduling_latency_seconds", "gauntlet_schedule_pass_seconds", "gauntlet_trial_restarts_total",
    "gauntlet_metric_points_total", "gauntlet_rpc_requests_total", "gauntlet_rpc_latency_seconds",
    "gauntlet_build_info"};

// family name -> number of series.
std::map<std::string, size_t> Series(const CoordinatorMetrics& metrics) {
  std::map<std::string, size_t> out;
  for (const prometheus::MetricFamily& f : metrics.registry()->Collect()) {
    out[f.name] = f.metric.size();
  }
  return out;
}

TEST(MetricsTest, ExportsExactlyTheContract) {
  const std::vector<std::string> names = CoordinatorMetrics::FamilyNames();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), kContract);
  CoordinatorMetrics metrics("1.2.3");
  for (const auto& [name, count] : Series(metrics)) {
    EXPECT_TRUE(kContract.count(name)) << "undeclared family " << name;
  }
}

TEST(MetricsTest, TrialSeriesFrozenThenRemovedPerTrial) {
  CoordinatorMetrics metrics("dev");
  const CoordinatorMetrics::TrialLabels labels{"exp-1", "exp-1-0", "std", "standard", "1"};
  for (const char* name :
       {"train_loss", "val_loss", "val_loss_native", "tokens_per_second", "steps_per_second",
        "step_time_seconds", "mfu", "gpu_memory_allocated_bytes", "gpu_memory_reserved_bytes",
        "gpu_memory_peak_bytes", "layers_per_token", "grad_norm", "lr", "val_bits_per_token"}) {
    v1::MetricPoint p;
    p.set_name(name);
    p.set_value(1.5);
    metrics.ObserveTrialMetric(labels, p);
  }
  std::map<std::string, size_t> series = Series(metrics);
  for (const std::string& name : kContract) {
    if (name.rfind("gauntlet_trial_", 0) == 0 && name != "gauntlet_trial_restarts_total" &&
        name.rfind("gauntlet_trial_inference_", 0) != 0) {
      EXPECT_EQ(series[name], 1u) << name;
    }
  }
  v1::MetricPoint other;
  other.set_name("val_loss");
  metrics.ObserveTrialMetric({"exp-1", "exp-1-1", "std", "standard", "2"}, other);
  metrics.RemoveTrial("exp-1", "exp-1-0");
  series = Series(metrics);
  EXPECT_EQ(series["gauntlet_trial_val_loss"], 1u);  // the other trial's series stays
  EXPECT_EQ(series["gauntlet_trial_step"], 1u);
  metrics.RemoveTrial("exp-1", "exp-1-1");
  metrics.RemoveTrial("exp-1", "exp-1-1");  // idempotent
  series = Series(metrics);
  EXPECT_EQ(series["gauntlet_trial_val_loss"], 0u);
  EXPECT_EQ(series["gauntlet_trial_step"], 0u);
}

TEST(MetricsTest, InferenceSeriesPerContextAndBatchThenRemoved) {
  CoordinatorMetrics metrics("dev");
  const CoordinatorMetrics::TrialLabels labels{"exp-1", "exp-1-0", "std", "standard", "1"};
  v1::InferenceResult result;
  for (int context : {256, 1024, 4096}) {
    v1::PrefillLatency* p = result.add_prefill();
    p->set_context(context);
    p->set_seconds(context * 1e-6);
  }
  for (int batch : {1, 32}) {
    v1::DecodeThroughput* d = result.add_decode();
    d->set_batch(batch);
    d->set_tokens_per_second(1000 * batch);
    d->set_seconds_per_step(0.002);
    // The bound is unknown (CPU) at batch 32: no ratio series for it.
    d->set_bandwidth_bound_seconds(batch == 1 ? 0.001 : 0);
  }
  result.set_kv_cache_bytes_per_token(4096);
  metrics.ObserveInference(labels, result);
  metrics.ObserveInference(labels, result);  // a repeated report changes nothing
  std::map<std::string, size_t> series = Series(metrics);
  EXPECT_EQ(series["gauntlet_trial_inference_prefill_seconds"], 3u);
  EXPECT_EQ(series["gauntlet_trial_inference_decode_tokens_per_second"], 2u);
  EXPECT_EQ(series["gauntlet_trial_inference_decode_bound_ratio"], 1u);
  EXPECT_EQ(series["gauntlet_trial_inference_kv_cache_bytes_per_token"], 1u);
  for (const prometheus::MetricFamily& f : metrics.registry()->Collect()) {
    if (f.name != "gauntlet_trial_inference_decode_bound_ratio") continue;
    EXPECT_DOUBLE_EQ(f.metric.at(0).gauge.value, 2.0);
  }
  metrics.RemoveTrial("exp-1", "exp-1-0");
  series = Series(metrics);
  for (const auto& [name, count] : series) {
    if (name.rfind("gauntlet_trial_inference_", 0) == 0) EXPECT_EQ(count, 0u) << name;
  }
}

}  // namespace
}  // namespace gauntlet
