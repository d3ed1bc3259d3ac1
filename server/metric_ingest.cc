#include "server/metric_ingest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/yaml_proto.h"

namespace gauntlet {
namespace {

// The metric point a worker forwards from TrainerStarted: the step an attempt resumed from.
constexpr char kResumedFromStep[] = "resumed_from_step";
constexpr size_t kQuoteBytes = 80;

}  // namespace

MetricBatch CheckMetrics(const v1::ReportMetricsRequest& request, TrialLifecycle& lifecycle) {
  MetricBatch batch;
  for (int i = 0; i < request.points_size(); ++i) {
    const v1::MetricPoint& point = request.points(i);
    const std::string where =
        absl::StrCat("points[", i, "] (", Truncated(point.name(), kQuoteBytes), ")");
    const v1::Trial* trial = lifecycle.FindTrial(point.trial_id());
    if (trial == nullptr) {
      batch.rejected.push_back(absl::StrCat(where, ": trial_id: unknown trial '",
                                            Truncated(point.trial_id(), kQuoteBytes), "'"));
      continue;
    }
    if (point.name().empty()) {
      batch.rejected.push_back(absl::StrCat(where, ": name: required"));
      continue;
    }
    if (!std::isfinite(point.value()) || !std::isfinite(point.train_seconds()) ||
        !std::isfinite(point.unix_time())) {
      batch.rejected.push_back(
          absl::StrCat(where, ": value, train_seconds and unix_time must be finite (",
                       point.value(), ", ", point.train_seconds(), ", ", point.unix_time(), ")"));
      continue;
    }
    if (point.step() < 0 || point.tokens() < 0) {
      batch.rejected.push_back(absl::StrCat(where, ": step and tokens must be >= 0"));
      continue;
    }
    if (request.attempt() != 0 && request.attempt() != trial->attempt()) continue;
    batch.accepted.push_back(point);
    v1::Trial& next = batch.updated.try_emplace(trial->id(), *trial).first->second;
    if (point.name() == kResumedFromStep) {
      // What the restart cost: the failed attempt's last step minus where this one resumed.
      const int64_t resumed = static_cast<int64_t>(point.value());
      next.set_steps_lost(next.steps_lost() + std::max<int64_t>(0, next.latest_step() - resumed));
      next.set_latest_step(resumed);
      continue;
    }
    (*next.mutable_latest_metrics())[point.name()] = point.value();
    next.set_latest_step(std::max(next.latest_step(), point.step()));
  }
  return batch;
}

absl::Status CheckLogs(const v1::ReportLogsRequest& request, TrialLifecycle& lifecycle) {
  for (int i = 0; i < request.chunks_size(); ++i) {
    const v1::LogChunk& chunk = request.chunks(i);
    if (lifecycle.FindTrial(chunk.trial_id()) == nullptr) {
      return absl::NotFoundError(absl::StrCat("chunks[", i, "].trial_id: unknown trial '",
                                              Truncated(chunk.trial_id(), kQuoteBytes), "'"));
    }
    if (chunk.rank() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("chunks[", i, "].rank: must be >= 0"));
    }
  }
  return absl::OkStatus();
}

std::vector<v1::Trial> ApplyMetrics(const MetricBatch& batch, TrialLifecycle& lifecycle) {
  std::vector<v1::Trial> rows;
  for (const auto& [id, next] : batch.updated) {
    v1::Trial& trial = *lifecycle.FindTrial(id);
    *trial.mutable_latest_metrics() = next.latest_metrics();
    trial.set_latest_step(next.latest_step());
    trial.set_steps_lost(next.steps_lost());
    rows.push_back(trial);
  }
  return rows;
}

void PublishMetrics(const MetricBatch& batch, CoordinatorMetrics& metrics, WatchHub& hub) {
  // A gauge shows only the latest value, so each trial's last point of each name is enough;
  // taken in request order, the step and time gauges end at the trial's last point.
  std::set<std::pair<std::string_view, std::string_view>> seen;
  std::vector<bool> latest(batch.accepted.size());
  for (size_t i = batch.accepted.size(); i-- > 0;) {
    latest[i] = seen.emplace(batch.accepted[i].trial_id(), batch.accepted[i].name()).second;
  }
  for (size_t i = 0; i < batch.accepted.size(); ++i) {
    const v1::MetricPoint& point = batch.accepted[i];
    const v1::Trial& trial = batch.updated.at(point.trial_id());
    if (latest[i]) {
      metrics.ObserveTrialMetric({trial.experiment_id(), trial.id(), trial.variant(),
                                  trial.spec().model().arch(), absl::StrCat(trial.seed())},
                                 point);
    }
    hub.Metric(trial.experiment_id(), point);
  }
  metrics.AddMetricPoints(static_cast<int>(batch.accepted.size()));
}

void ReportRejected(const v1::ReportMetricsRequest& request, MetricBatch& batch,
                    v1::ReportMetricsResponse* response) {
  if (batch.rejected.empty()) return;
  std::cerr << "coordinator: ReportMetrics from " << Truncated(request.worker_id(), kQuoteBytes)
            << ": rejected " << batch.rejected.size() << " of " << request.points_size()
            << " points, first: " << batch.rejected.front() << std::endl;
  if (response == nullptr) return;
  for (std::string& r : batch.rejected) response->add_rejected(std::move(r));
}

}  // namespace gauntlet
