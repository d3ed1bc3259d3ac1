#ifndef GAUNTLET_SERVER_SQLITE_STORE_H_
#define GAUNTLET_SERVER_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace gauntlet {

struct SqliteStoreOptions {
  // Once a commit leaves this many pages in the write-ahead log, a background thread copies
  // them into the database (a checkpoint, with its fsyncs) on its own connection, so a commit
  // never waits for one. SQLite's default does it inside the committing call, which put 10-50 ms
  // on every few-hundredth metric batch on a busy disk.
  int checkpoint_pages = 1000;
  // If the background falls this far behind, the committing call checkpoints itself (SQLite's
  // own behaviour): the log stays bounded whatever the load.
  int max_wal_pages = 64000;
};

// The Store on one embedded SQLite file in WAL mode. Trials are stored as serialized protos next to
// the columns queries need; transitions, metric points and logs are append-only tables.
class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) the database at `path` and its schema.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                           SqliteStoreOptions options = {});
  // Stops the checkpointer (after a last checkpoint) and closes the database.
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

  // Background checkpoints finished so far.
  int64_t checkpoints() const;
  // Waits until at least `n` background checkpoints finished or `timeout` passed.
  bool AwaitCheckpoints(int64_t n, absl::Duration timeout) const;

 private:
  SqliteStore(sqlite3* db, sqlite3* checkpoint_db, SqliteStoreOptions options);
  // sqlite3_wal_hook callback: runs on the writer after every commit.
  static int OnCommit(void* self, sqlite3* db, const char* name, int wal_pages);
  void CheckpointLoop();
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteTrial(const v1::Trial& trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteTransition(const std::string& trial_id, const v1::TrialTransition& transition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT, rolling back when it fails.
  template <typename Body>
  absl::Status InTransaction(Body body) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A cached prepared statement of db_ (compiled once, reset before each use).
  sqlite3_stmt* Prepared(sqlite3_stmt** slot, const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SqliteStoreOptions options_;
  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  sqlite3_stmt* insert_metric_ ABSL_GUARDED_BY(mu_) = nullptr;
  sqlite3_stmt* upsert_trial_ ABSL_GUARDED_BY(mu_) = nullptr;

  // The checkpointer's own connection, used only by its thread.
  sqlite3* const checkpoint_db_;
  mutable absl::Mutex checkpoint_mu_;
  bool checkpoint_wanted_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  int64_t checkpoints_ ABSL_GUARDED_BY(checkpoint_mu_) = 0;
  std::thread checkpointer_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_SQLITE_STORE_H_
