#ifndef GAUNTLET_SERVER_STORE_H_
#define GAUNTLET_SERVER_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {

// One stored log chunk with its position, for resuming a follow stream.
struct StoredLogChunk {
  int64_t id = 0;
  v1::LogChunk chunk;
};

// The persistence seam of the coordinator. Every method is atomic: it is applied completely or
// not at all, so the caller can act on its in-memory state only after the write succeeded.
class Store {
 public:
  virtual ~Store() = default;

  // Persists a new experiment and all its trials. ALREADY_EXISTS if the id or name is taken.
  virtual absl::Status CreateExperiment(const v1::Experiment& experiment) = 0;
  // Replaces the stored trial (its transitions field is ignored) and appends `transition` to its
  // history when non-null.
  virtual absl::Status SaveTrial(const v1::Trial& trial,
                                 const v1::TrialTransition* transition) = 0;
  // Replaces every given trial and appends its last transition, in one transaction (a scheduling
  // pass placing thousands of trials writes once).
  virtual absl::Status SaveTrials(const std::vector<const v1::Trial*>& trials) = 0;
  // Appends metric points and replaces the given trials (whose latest metrics they update).
  virtual absl::Status SaveMetrics(const std::vector<v1::MetricPoint>& points,
                                   const std::vector<const v1::Trial*>& trials) = 0;
  // Records the trainer's final summary of a trial.
  virtual absl::Status SaveSummary(const std::string& trial_id,
                                   const v1::TrainerSummary& summary) = 0;
  virtual absl::Status AppendLogs(const std::vector<v1::LogChunk>& chunks) = 0;
  // Thins a trial's stored points to at most `max_points_per_name` per metric name, evenly
  // spaced in arrival order with the first and the last kept (a finished trial's curves keep
  // their shape in bounded space). Names with fewer points are untouched; idempotent.
  virtual absl::Status DownsampleMetrics(const std::string& trial_id,
                                         int max_points_per_name) = 0;

  // Every experiment, oldest first, with trials (ordered by index) and their full transitions.
  virtual absl::StatusOr<std::vector<v1::Experiment>> LoadExperiments() = 0;
  // Trial id -> summary.
  virtual absl::StatusOr<std::map<std::string, v1::TrainerSummary>> LoadSummaries() = 0;
  // A trial's points of one metric name, in arrival order.
  virtual absl::StatusOr<std::vector<v1::MetricPoint>> LoadMetrics(const std::string& trial_id,
                                                                   const std::string& name) = 0;
  // Log chunks of one trial and rank with id > after_id, oldest first.
  virtual absl::StatusOr<std::vector<StoredLogChunk>> ReadLogs(const std::string& trial_id,
                                                               int rank, int64_t after_id) = 0;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_STORE_H_
