#ifndef GAUNTLET_SERVER_METRICS_H_
#define GAUNTLET_SERVER_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace gauntlet {

// Every Prometheus family the coordinator exports, declared here and nowhere else. The names are
// a contract with the Grafana dashboards and alert rules in deploy/.
class CoordinatorMetrics {
 public:
  // Labels of the per-trial series; bounded by the number of trials, never by steps.
  struct TrialLabels {
    std::string experiment;
    std::string trial;
    std::string variant;
    std::string arch;
    std::string seed;
  };

  explicit CoordinatorMetrics(const std::string& version);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Updates the trial's gauge for `point.name` (names without a gauge, such as
  // val_bits_per_token, are only stored) plus its step, tokens, train_seconds and
  // last-metric time. Series stay at their last value after the trial ends so dashboards keep
  // the curve's end; they go away with RemoveTrial (the controller calls it a retention period
  // after the trial ended) or a restart.
  void ObserveTrialMetric(const TrialLabels& labels, const v1::MetricPoint& point);
  // An inference trial's result (TrainerSummary.inference): prefill seconds per context, decode
  // tokens/s and its ratio to the memory-bandwidth bound per batch size, KV-cache bytes per
  // token and peak memory, kept and removed like the trial's other series.
  void ObserveInference(const TrialLabels& labels, const v1::InferenceResult& result);
  void RemoveTrial(const std::string& experiment_id, const std::string& trial_id);

  // Control-plane gauges, set wholesale from the controller's state (state name -> count).
  void SetExperimentCounts(const std::map<std::string, int>& counts);
  void SetTrialCounts(const std::map<std::string, int>& counts);
  void SetWorkerCounts(int alive, int lost);
  void SetDeviceCounts(int gpu_free, int gpu_busy, int cpu_free, int cpu_busy);
  void SetQueueDepth(int pending);
  void ObserveSchedulingLatency(double seconds);
  // How long one scheduling pass took (placing pending trials on the free devices).
  void ObserveSchedulePass(double seconds);
  void IncrementRestarts();
  void AddMetricPoints(int n);
  void ObserveRpc(const std::string& method, const std::string& code, double seconds);

  // The exported family names, for tests and the dashboard checks.
  static std::vector<std::string> FamilyNames();

 private:
  using GaugeFamily = prometheus::Family<prometheus::Gauge>;
  struct TrialSeries {
    std::map<GaugeFamily*, prometheus::Gauge*> gauges;
    // Series with a label beyond the trial's (context, batch).
    std::vector<std::pair<GaugeFamily*, prometheus::Gauge*>> labeled;
  };
  prometheus::Gauge& TrialGauge(TrialSeries& series, GaugeFamily& family,
                                const TrialLabels& labels) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<prometheus::Registry> registry_;
  // metric point name -> per-trial gauge family.
  std::map<std::string, GaugeFamily*> trial_families_;
  GaugeFamily* trial_step_;
  GaugeFamily* trial_tokens_;
  GaugeFamily* trial_train_seconds_;
  GaugeFamily* trial_last_metric_;
  GaugeFamily* inference_prefill_;
  GaugeFamily* inference_decode_;
  GaugeFamily* inference_decode_bound_ratio_;
  GaugeFamily* inference_kv_bytes_;
  GaugeFamily* inference_peak_memory_;
  GaugeFamily* experiments_;
  GaugeFamily* trials_;
  GaugeFamily* workers_;
  GaugeFamily* devices_;
  prometheus::Gauge* queue_depth_;
  prometheus::Histogram* scheduling_latency_;
  prometheus::Histogram* schedule_pass_;
  prometheus::Counter* restarts_;
  prometheus::Counter* metric_points_;
  prometheus::Family<prometheus::Counter>* rpc_requests_;
  prometheus::Family<prometheus::Histogram>* rpc_latency_;

  absl::Mutex mu_;
  // experiment id -> trial id -> its series.
  std::map<std::string, std::map<std::string, TrialSeries>> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_METRICS_H_
