#ifndef GAUNTLET_SERVER_METRIC_INGEST_H_
#define GAUNTLET_SERVER_METRIC_INGEST_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/worker.pb.h"
#include "server/metrics.h"
#include "server/trial_lifecycle.h"
#include "server/watch_hub.h"

namespace gauntlet {

// What arrives from workers besides heartbeats: metric points and log chunks, checked against
// the known trials before anything is stored.

// One ReportMetrics request, checked against the known trials.
struct MetricBatch {
  // The points to store, in request order.
  std::vector<v1::MetricPoint> accepted;
  // Trial id -> the trial with the accepted points applied (latest metrics and step, steps lost).
  std::map<std::string, v1::Trial> updated;
  // One "points[i] (name): field: why" per refused point.
  std::vector<std::string> rejected;
};

// Valid points of the trials' current attempts are accepted; invalid ones (unknown trial, no
// name, non-finite or negative numbers) are rejected with the field named; points of an attempt
// the coordinator gave up on are dropped silently (the gang may still be talking). Reads
// `lifecycle`, changes nothing.
MetricBatch CheckMetrics(const v1::ReportMetricsRequest& request, TrialLifecycle& lifecycle);

// NOT_FOUND or INVALID_ARGUMENT naming the first chunk of a ReportLogs request with an unknown
// trial or a negative rank.
absl::Status CheckLogs(const v1::ReportLogsRequest& request, TrialLifecycle& lifecycle);

// Sets the latest metrics, step and steps lost of the batch's trials in memory; returns the
// trial rows to store with the points.
std::vector<v1::Trial> ApplyMetrics(const MetricBatch& batch, TrialLifecycle& lifecycle);

// Sets the trials' Prometheus gauges from the accepted points and passes every point to the
// experiments' watchers.
void PublishMetrics(const MetricBatch& batch, CoordinatorMetrics& metrics, WatchHub& hub);

// Logs the refused points (one line per request) and lists them in `response` (when given).
void ReportRejected(const v1::ReportMetricsRequest& request, MetricBatch& batch,
                    v1::ReportMetricsResponse* response);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_METRIC_INGEST_H_
