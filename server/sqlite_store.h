#ifndef GAUNTLET_SERVER_SQLITE_STORE_H_
#define GAUNTLET_SERVER_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/store.h"

struct sqlite3;

namespace gauntlet {

// The Store on one embedded SQLite file in WAL mode. Trials are stored as serialized protos next to
// the columns queries need; transitions, metric points and logs are append-only tables.
class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) the database at `path` and its schema.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path);
  ~SqliteStore() override;

  absl::Status CreateExperiment(const v1::Experiment& experiment) override;
  absl::Status SaveTrial(const v1::Trial& trial, const v1::TrialTransition* transition) override;
  absl::Status SaveTrials(const std::vector<const v1::Trial*>& trials) override;
  absl::Status SaveMetrics(const std::vector<v1::MetricPoint>& points,
                           const std::vector<const v1::Trial*>& trials) override;
  absl::Status SaveSummary(const std::string& trial_id,
                           const v1::TrainerSummary& summary) override;
  absl::Status AppendLogs(const std::vector<v1::LogChunk>& chunks) override;
  absl::Status DownsampleMetrics(const std::string& trial_id, int max_points_per_name) override;
  absl::StatusOr<std::vector<v1::Experiment>> LoadExperiments() override;
  absl::StatusOr<std::map<std::string, v1::TrainerSummary>> LoadSummaries() override;
  absl::StatusOr<std::vector<v1::MetricPoint>> LoadMetrics(const std::string& trial_id,
                                                           const std::string& name) override;
  absl::StatusOr<std::vector<StoredLogChunk>> ReadLogs(const std::string& trial_id, int rank,
                                                       int64_t after_id) override;

 private:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteTrial(const v1::Trial& trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteTransition(const std::string& trial_id, const v1::TrialTransition& transition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back when it fails.
  template <typename Body>
  absl::Status InTransaction(Body body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_SQLITE_STORE_H_
