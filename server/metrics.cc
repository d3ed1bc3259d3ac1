#include "server/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

// Metric point name (coordinator.proto MetricPoint.name) -> exported per-trial gauge.
const std::map<std::string, std::string>& TrialGaugeNames() {
  static const auto* names = new std::map<std::string, std::string>{
      {"train_loss", "gauntlet_trial_train_loss"},
      {"val_loss", "gauntlet_trial_val_loss"},
      {"val_loss_native", "gauntlet_trial_val_loss_native"},
      {"tokens_per_second", "gauntlet_trial_tokens_per_second"},
      {"steps_per_second", "gauntlet_trial_steps_per_second"},
      {"step_time_seconds", "gauntlet_trial_step_time_seconds"},
      {"mfu", "gauntlet_trial_mfu_ratio"},
      {"gpu_memory_allocated_bytes", "gauntlet_trial_gpu_memory_allocated_bytes"},
      {"gpu_memory_reserved_bytes", "gauntlet_trial_gpu_memory_reserved_bytes"},
      {"gpu_memory_peak_bytes", "gauntlet_trial_gpu_memory_peak_bytes"},
      {"layers_per_token", "gauntlet_trial_layers_per_token"},
      {"grad_norm", "gauntlet_trial_grad_norm"},
      {"lr", "gauntlet_trial_learning_rate"},
  };
  return *names;
}

prometheus::Family<prometheus::Gauge>& Gauge(prometheus::Registry& registry,
                                             const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

// Seconds-scale buckets: scheduling and RPCs range from sub-millisecond to minutes.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
          300, 900};
}

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Registry& r = *registry_;
  for (const auto& [point_name, family_name] : TrialGaugeNames()) {
    trial_families_[point_name] =
        &Gauge(r, family_name, absl::StrCat("Latest ", point_name, " reported by the trial"));
  }
  trial_step_ = &Gauge(r, "gauntlet_trial_step", "Latest optimizer step reported by the trial");
  trial_tokens_ = &Gauge(r, "gauntlet_trial_tokens", "Tokens trained on so far (all ranks)");
  trial_train_seconds_ =
      &Gauge(r, "gauntlet_trial_train_seconds", "Training wall-clock seconds so far");
  trial_last_metric_ = &Gauge(r, "gauntlet_trial_last_metric_unix_seconds",
                              "Unix time of the trial's latest metric point");
  inference_prefill_ = &Gauge(r, "gauntlet_trial_inference_prefill_seconds",
                             "Inference trial: prefill time of one prompt of `context` tokens");
  inference_decode_ = &Gauge(r, "gauntlet_trial_inference_decode_tokens_per_second",
                             "Inference trial: decode tokens/s at batch size `batch`");
  inference_decode_bound_ratio_ =
      &Gauge(r, "gauntlet_trial_inference_decode_bound_ratio",
             "Inference trial: decode step time over its memory-bandwidth bound at `batch`");
  inference_kv_bytes_ = &Gauge(r, "gauntlet_trial_inference_kv_cache_bytes_per_token",
                               "Inference trial: KV-cache bytes per cached token");
  inference_peak_memory_ = &Gauge(r, "gauntlet_trial_inference_peak_memory_bytes",
                                  "Inference trial: peak device memory");
  experiments_ = &Gauge(r, "gauntlet_experiments", "Experiments by state");
  trials_ = &Gauge(r, "gauntlet_trials", "Trials by state");
  workers_ = &Gauge(r, "gauntlet_workers", "Registered workers by lease state");
  devices_ = &Gauge(r, "gauntlet_devices", "Devices of alive workers by kind and state");
  queue_depth_ = &Gauge(r, "gauntlet_queue_depth", "Pending trials").Add({});
  scheduling_latency_ = &prometheus::BuildHistogram()
                             .Name("gauntlet_scheduling_latency_seconds")
                             .Help("Time from PENDING to SCHEDULED")
                             .Register(r)
                             .Add({}, LatencyBuckets());
  schedule_pass_ = &prometheus::BuildHistogram()
                        .Name("gauntlet_schedule_pass_seconds")
                        .Help("Duration of one scheduling pass")
                        .Register(r)
                        .Add({}, LatencyBuckets());
  restarts_ = &prometheus::BuildCounter()
                   .Name("gauntlet_trial_restarts_total")
                   .Help("Trials sent back to PENDING after a worker loss or gang failure")
                   .Register(r)
                   .Add({});
  metric_points_ = &prometheus::BuildCounter()
                        .Name("gauntlet_metric_points_total")
                        .Help("Metric points ingested from workers")
                        .Register(r)
                        .Add({});
  rpc_requests_ = &prometheus::BuildCounter()
                       .Name("gauntlet_rpc_requests_total")
                       .Help("RPCs served by method and status code")
                       .Register(r);
  rpc_latency_ = &prometheus::BuildHistogram()
                      .Name("gauntlet_rpc_latency_seconds")
                      .Help("RPC handling time by method")
                      .Register(r);
  Gauge(r, "gauntlet_build_info", "Always 1; the version label names the build")
      .Add({{"version", version}})
      .Set(1);

  // Publish every state from the start, so dashboards see zeros rather than gaps.
  SetExperimentCounts({});
  SetTrialCounts({});
  SetWorkerCounts(0, 0);
  SetDeviceCounts(0, 0, 0, 0);
}

std::vector<std::string> CoordinatorMetrics::FamilyNames() {
  std::vector<std::string> names;
  for (const auto& entry : TrialGaugeNames()) names.push_back(entry.second);
  for (const char* name :
       {"gauntlet_trial_step", "gauntlet_trial_tokens", "gauntlet_trial_train_seconds",
        "gauntlet_trial_last_metric_unix_seconds", "gauntlet_trial_inference_prefill_seconds",
        "gauntlet_trial_inference_decode_tokens_per_second",
        "gauntlet_trial_inference_decode_bound_ratio",
        "gauntlet_trial_inference_kv_cache_bytes_per_token",
        "gauntlet_trial_inference_peak_memory_bytes", "gauntlet_experiments", "gauntlet_trials",
        "gauntlet_workers", "gauntlet_devices", "gauntlet_queue_depth",
        "gauntlet_scheduling_latency_seconds", "gauntlet_schedule_pass_seconds",
        "gauntlet_trial_restarts_total",
        "gauntlet_metric_points_total", "gauntlet_rpc_requests_total",
        "gauntlet_rpc_latency_seconds", "gauntlet_build_info"}) {
    names.push_back(name);
  }
  return names;
}

prometheus::Gauge& CoordinatorMetrics::TrialGauge(TrialSeries& series, GaugeFamily& family,
                                                  const TrialLabels& labels) {
  prometheus::Gauge*& gauge = series.gauges[&family];
  if (gauge == nullptr) {
    gauge = &family.Add({{"experiment", labels.experiment},
                         {"trial", labels.trial},
                         {"variant", labels.variant},
                         {"arch", labels.arch},
                         {"seed", labels.seed}});
  }
  return *gauge;
}

void CoordinatorMetrics::ObserveTrialMetric(const TrialLabels& labels,
                                            const v1::MetricPoint& point) {
  absl::MutexLock lock(&mu_);
  TrialSeries& series = series_[labels.experiment][labels.trial];
  auto family = trial_families_.find(point.name());
  if (family != trial_families_.end()) {
    TrialGauge(series, *family->second, labels).Set(point.value());
  }
  TrialGauge(series, *trial_step_, labels).Set(static_cast<double>(point.step()));
  TrialGauge(series, *trial_tokens_, labels).Set(static_cast<double>(point.tokens()));
  TrialGauge(series, *trial_train_seconds_, labels).Set(point.train_seconds());
  TrialGauge(series, *trial_last_metric_, labels).Set(point.unix_time());
}

void CoordinatorMetrics::ObserveInference(const TrialLabels& labels,
                                          const v1::InferenceResult& result) {
  absl::MutexLock lock(&mu_);
  TrialSeries& series = series_[labels.experiment][labels.trial];
  const auto add = [&](GaugeFamily* family, const std::string& key, int value, double v) {
    prometheus::Gauge& gauge = family->Add({{"experiment", labels.experiment},
                                            {"trial", labels.trial},
                                            {"variant", labels.variant},
                                            {"arch", labels.arch},
                                            {"seed", labels.seed},
                                            {key, absl::StrCat(value)}});
    gauge.Set(v);
    const std::pair<GaugeFamily*, prometheus::Gauge*> entry(family, &gauge);
    // A repeated report (an exit retried by the worker) sets the same series again.
    if (std::find(series.labeled.begin(), series.labeled.end(), entry) == series.labeled.end()) {
      series.labeled.push_back(entry);
    }
  };
  for (const v1::PrefillLatency& p : result.prefill()) {
    add(inference_prefill_, "context", p.context(), p.seconds());
  }
  for (const v1::DecodeThroughput& d : result.decode()) {
    add(inference_decode_, "batch", d.batch(), d.tokens_per_second());
    if (d.bandwidth_bound_seconds() > 0) {
      add(inference_decode_bound_ratio_, "batch", d.batch(),
          d.seconds_per_step() / d.bandwidth_bound_seconds());
    }
  }
  TrialGauge(series, *inference_kv_bytes_, labels).Set(result.kv_cache_bytes_per_token());
  TrialGauge(series, *inference_peak_memory_, labels).Set(result.peak_memory_bytes());
}

void CoordinatorMetrics::RemoveTrial(const std::string& experiment_id,
                                     const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  auto experiment = series_.find(experiment_id);
  if (experiment == series_.end()) return;
  auto trial = experiment->second.find(trial_id);
  if (trial == experiment->second.end()) return;
  for (auto& [family, gauge] : trial->second.gauges) family->Remove(gauge);
  for (auto& [family, gauge] : trial->second.labeled) family->Remove(gauge);
  experiment->second.erase(trial);
  if (experiment->second.empty()) series_.erase(experiment);
}

void CoordinatorMetrics::SetExperimentCounts(const std::map<std::string, int>& counts) {
  for (const char* state : {"pending", "running", "completed", "failed", "canceled"}) {
    auto it = counts.find(state);
    experiments_->Add({{"state", state}}).Set(it == counts.end() ? 0 : it->second);
  }
}

void CoordinatorMetrics::SetTrialCounts(const std::map<std::string, int>& counts) {
  for (const char* state : {"pending", "scheduled", "running", "completed", "failed", "canceled"}) {
    auto it = counts.find(state);
    trials_->Add({{"state", state}}).Set(it == counts.end() ? 0 : it->second);
  }
}

void CoordinatorMetrics::SetWorkerCounts(int alive, int lost) {
  workers_->Add({{"state", "alive"}}).Set(alive);
  workers_->Add({{"state", "lost"}}).Set(lost);
}

void CoordinatorMetrics::SetDeviceCounts(int gpu_free, int gpu_busy, int cpu_free, int cpu_busy) {
  devices_->Add({{"kind", "gpu"}, {"state", "free"}}).Set(gpu_free);
  devices_->Add({{"kind", "gpu"}, {"state", "busy"}}).Set(gpu_busy);
  devices_->Add({{"kind", "cpu"}, {"state", "free"}}).Set(cpu_free);
  devices_->Add({{"kind", "cpu"}, {"state", "busy"}}).Set(cpu_busy);
}

void CoordinatorMetrics::SetQueueDepth(int pending) { queue_depth_->Set(pending); }

void CoordinatorMetrics::ObserveSchedulingLatency(double seconds) {
  scheduling_latency_->Observe(seconds);
}

void CoordinatorMetrics::ObserveSchedulePass(double seconds) { schedule_pass_->Observe(seconds); }

void CoordinatorMetrics::IncrementRestarts() { restarts_->Increment(); }

void CoordinatorMetrics::AddMetricPoints(int n) { metric_points_->Increment(n); }

void CoordinatorMetrics::ObserveRpc(const std::string& method, const std::string& code,
                                    double seconds) {
  rpc_requests_->Add({{"method", method}, {"code", code}}).Increment();
  rpc_latency_->Add({{"method", method}}, LatencyBuckets()).Observe(seconds);
}

}  // namespace gauntlet
