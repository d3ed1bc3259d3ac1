#include "server/sqlite_store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace gauntlet {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS experiments (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_unix_time REAL NOT NULL,
  proto BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
  id TEXT PRIMARY KEY,
  experiment_id TEXT NOT NULL REFERENCES experiments(id),
  idx INTEGER NOT NULL,
  state INTEGER NOT NULL,
  proto BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_by_experiment ON trials(experiment_id, idx);
CREATE TABLE IF NOT EXISTS transitions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  trial_id TEXT NOT NULL,
  from_state INTEGER NOT NULL,
  to_state INTEGER NOT NULL,
  unix_time REAL NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_trial ON transitions(trial_id, seq);
CREATE TABLE IF NOT EXISTS metrics (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  trial_id TEXT NOT NULL,
  name TEXT NOT NULL,
  value REAL NOT NULL,
  step INTEGER NOT NULL,
  tokens INTEGER NOT NULL,
  train_seconds REAL NOT NULL,
  unix_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_trial ON metrics(trial_id, name, seq);
CREATE TABLE IF NOT EXISTS summaries (
  trial_id TEXT PRIMARY KEY,
  json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  trial_id TEXT NOT NULL,
  rank INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_trial ON logs(trial_id, rank, id);
)sql";

absl::Status SqliteError(sqlite3* db, const std::string& what) {
  const int code = sqlite3_extended_errcode(db);
  std::string message = absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::AlreadyExistsError(message);
  }
  return absl::InternalError(message);
}

// A prepared statement that finalizes itself, or a use of a cached one (left reset).
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db), owned_(true) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  Statement(sqlite3* db, sqlite3_stmt* cached) : db_(db), stmt_(cached), owned_(false) {}
  ~Statement() {
    if (owned_) {
      sqlite3_finalize(stmt_);
    } else if (stmt_ != nullptr) {
      Reset();
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Statement& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  absl::Status Run(const std::string& what) {
    if (!ok() || Step() != SQLITE_DONE) return SqliteError(db_, what);
    return absl::OkStatus();
  }
  std::string Text(int i) {
    const unsigned char* p = sqlite3_column_text(stmt_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, i))
             : std::string();
  }
  std::string Blob(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, i))
             : std::string();
  }
  int64_t Int(int i) { return sqlite3_column_int64(stmt_, i); }
  double Double(int i) { return sqlite3_column_double(stmt_, i); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  const bool owned_;
};

constexpr char kInsertMetric[] =
    "INSERT INTO metrics(trial_id, name, value, step, tokens, train_seconds, unix_time) "
    "VALUES(?,?,?,?,?,?,?)";
constexpr char kUpsertTrial[] =
    "INSERT INTO trials(id, experiment_id, idx, state, proto) VALUES(?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET state=excluded.state, proto=excluded.proto";

// Trial rows hold everything but the history, which lives in `transitions`.
std::string SerializeTrial(const v1::Trial& trial) {
  v1::Trial copy = trial;
  copy.clear_transitions();
  return copy.SerializeAsString();
}

}  // namespace

namespace {

absl::StatusOr<sqlite3*> OpenConnection(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("--db: cannot open ", path, ": ", db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               SqliteStoreOptions options) {
  absl::StatusOr<sqlite3*> db = OpenConnection(path);
  if (!db.ok()) return db.status();
  {
    // WAL keeps readers and the writer apart (and lets the checkpointer run beside the writer);
    // NORMAL sync is durable across process crashes: a commit is in the log (the page cache)
    // before the call returns, and only a power loss can take the last ones.
    char* error = nullptr;
    // The log file is truncated back to 64 MiB when rewound after a burst.
    for (const char* sql : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;",
                            "PRAGMA journal_size_limit=67108864;", "PRAGMA foreign_keys=ON;",
                            kSchema}) {
      if (sqlite3_exec(*db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
        absl::Status status = absl::InternalError(
            absl::StrCat("sqlite: ", path, ": ", error ? error : "unknown error"));
        sqlite3_free(error);
        sqlite3_close(*db);
        return status;
      }
    }
  }
  absl::StatusOr<sqlite3*> checkpoint_db = OpenConnection(path);
  // A connection knows the file is in WAL mode (and checkpoints it) only once it has read it.
  if (checkpoint_db.ok() &&
      sqlite3_exec(*checkpoint_db, "PRAGMA journal_mode=WAL;", nullptr, nullptr, nullptr) !=
          SQLITE_OK) {
    checkpoint_db = absl::InternalError(
        absl::StrCat("sqlite: ", path, ": ", sqlite3_errmsg(*checkpoint_db)));
  }
  if (!checkpoint_db.ok()) {
    sqlite3_close(*db);
    return checkpoint_db.status();
  }
  return std::unique_ptr<SqliteStore>(new SqliteStore(*db, *checkpoint_db, options));
}

SqliteStore::SqliteStore(sqlite3* db, sqlite3* checkpoint_db, SqliteStoreOptions options)
    : options_(options), db_(db), checkpoint_db_(checkpoint_db) {
  // Replaces SQLite's automatic checkpoint (which runs inside the committing call).
  sqlite3_wal_hook(db, &SqliteStore::OnCommit, this);
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
}

SqliteStore::~SqliteStore() {
  {
    absl::MutexLock lock(&checkpoint_mu_);
    stopping_ = true;
  }
  checkpointer_.join();
  sqlite3_close(checkpoint_db_);
  absl::MutexLock lock(&mu_);
  sqlite3_finalize(insert_metric_);
  sqlite3_finalize(upsert_trial_);
  sqlite3_close(db_);
}

int SqliteStore::OnCommit(void* self, sqlite3* db, const char* name, int wal_pages) {
  SqliteStore* store = static_cast<SqliteStore*>(self);
  if (wal_pages >= store->options_.max_wal_pages) {
    // The checkpointer is this far behind: do one here, as SQLite would, to bound the log.
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (wal_pages >= store->options_.checkpoint_pages) {
    absl::MutexLock lock(&store->checkpoint_mu_);
    store->checkpoint_wanted_ = true;
  }
  return SQLITE_OK;
}

void SqliteStore::CheckpointLoop() {
  while (true) {
    {
      absl::MutexLock lock(&checkpoint_mu_);
      auto due = [this]() ABSL_SHARED_LOCKS_REQUIRED(checkpoint_mu_) {
        return checkpoint_wanted_ || stopping_;
      };
      checkpoint_mu_.Await(absl::Condition(&due));
      checkpoint_wanted_ = false;
    }
    // PASSIVE: copies what no reader still needs, never blocks the writer. A commit that starts
    // after a complete checkpoint rewinds the log to its beginning, so the file stops growing.
    sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                              nullptr);
    absl::MutexLock lock(&checkpoint_mu_);
    ++checkpoints_;
    if (stopping_) return;
  }
}

int64_t SqliteStore::checkpoints() const {
  absl::MutexLock lock(&checkpoint_mu_);
  return checkpoints_;
}

bool SqliteStore::AwaitCheckpoints(int64_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&checkpoint_mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(checkpoint_mu_) { return checkpoints_ >= n; };
  return checkpoint_mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

sqlite3_stmt* SqliteStore::Prepared(sqlite3_stmt** slot, const char* sql) {
  if (*slot == nullptr && sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, slot,
                                             nullptr) != SQLITE_OK) {
    sqlite3_finalize(*slot);
    *slot = nullptr;
  }
  return *slot;
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    return absl::InternalError(absl::StrCat("sqlite: ", message));
  }
  return absl::OkStatus();
}

template <typename Body>
absl::Status SqliteStore::InTransaction(Body body) {
  if (absl::Status status = Exec("BEGIN IMMEDIATE;"); !status.ok()) return status;
  // Rolled back on every way out, an exception (std::bad_alloc) included: a transaction left
  // open would refuse every later write with "cannot start a transaction within a transaction".
  struct Rollback {
    SqliteStore* store;
    bool armed = true;
    ~Rollback() {
      if (armed) store->Exec("ROLLBACK;").IgnoreError();
    }
  } rollback{this};
  absl::Status status = body();
  if (status.ok()) status = Exec("COMMIT;");
  if (status.ok()) rollback.armed = false;
  return status;
}

absl::Status SqliteStore::WriteTrial(const v1::Trial& trial) {
  const size_t dash = trial.id().rfind('-');
  const int64_t index = dash == std::string::npos ? 0 : std::atoll(trial.id().c_str() + dash + 1);
  Statement stmt(db_, Prepared(&upsert_trial_, kUpsertTrial));
  if (!stmt.ok()) return SqliteError(db_, "prepare trial");
  stmt.Bind(1, trial.id()).Bind(2, trial.experiment_id()).Bind(3, index);
  stmt.Bind(4, static_cast<int64_t>(trial.state())).BindBlob(5, SerializeTrial(trial));
  return stmt.Run(absl::StrCat("save trial ", trial.id()));
}

absl::Status SqliteStore::CreateExperiment(const v1::Experiment& experiment) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    v1::Experiment header = experiment;
    header.clear_trials();
    Statement stmt(db_,
                   "INSERT INTO experiments(id, name, created_unix_time, proto) VALUES(?,?,?,?)");
    stmt.Bind(1, experiment.id()).Bind(2, experiment.spec().name());
    stmt.Bind(3, experiment.created_unix_time()).BindBlob(4, header.SerializeAsString());
    if (absl::Status status = stmt.Run("create experiment " + experiment.id()); !status.ok()) {
      return status;
    }
    for (const v1::Trial& trial : experiment.trials()) {
      if (absl::Status status = WriteTrial(trial); !status.ok()) return status;
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::SaveTrial(const v1::Trial& trial, const v1::TrialTransition* transition) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    if (absl::Status status = WriteTrial(trial); !status.ok()) return status;
    return transition == nullptr ? absl::OkStatus() : WriteTransition(trial.id(), *transition);
  });
}

absl::Status SqliteStore::SaveTrials(const std::vector<const v1::Trial*>& trials) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    for (const v1::Trial* trial : trials) {
      if (absl::Status status = WriteTrial(*trial); !status.ok()) return status;
      if (trial->transitions_size() == 0) continue;
      if (absl::Status status = WriteTransition(
              trial->id(), trial->transitions(trial->transitions_size() - 1));
          !status.ok()) {
        return status;
      }
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::WriteTransition(const std::string& trial_id,
                                          const v1::TrialTransition& transition) {
  Statement stmt(db_,
                 "INSERT INTO transitions(trial_id, from_state, to_state, unix_time, reason) "
                 "VALUES(?,?,?,?,?)");
  stmt.Bind(1, trial_id).Bind(2, static_cast<int64_t>(transition.from()));
  stmt.Bind(3, static_cast<int64_t>(transition.to())).Bind(4, transition.unix_time());
  stmt.Bind(5, transition.reason());
  return stmt.Run("append transition of " + trial_id);
}

absl::Status SqliteStore::SaveMetrics(const std::vector<v1::MetricPoint>& points,
                                      const std::vector<const v1::Trial*>& trials) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    Statement stmt(db_, Prepared(&insert_metric_, kInsertMetric));
    if (!stmt.ok()) return SqliteError(db_, "prepare metrics");
    for (const v1::MetricPoint& p : points) {
      stmt.Reset();
      stmt.Bind(1, p.trial_id()).Bind(2, p.name()).Bind(3, p.value()).Bind(4, p.step());
      stmt.Bind(5, p.tokens()).Bind(6, p.train_seconds()).Bind(7, p.unix_time());
      if (absl::Status status = stmt.Run("append metric"); !status.ok()) return status;
    }
    for (const v1::Trial* trial : trials) {
      if (absl::Status status = WriteTrial(*trial); !status.ok()) return status;
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteStore::DownsampleMetrics(const std::string& trial_id,
                                           int max_points_per_name) {
  if (max_points_per_name < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_points_per_name: must be >= 2, got ", max_points_per_name));
  }
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    // Point i of n (0-based, per name, by seq) is kept when it is the first or starts a new one
    // of the m - 1 equal buckets floor(i * (m - 1) / (n - 1)): m points, first and last included.
    Statement stmt(db_,
                   "DELETE FROM metrics WHERE seq IN ("
                   "  SELECT seq FROM ("
                   "    SELECT seq, ROW_NUMBER() OVER w - 1 AS i, COUNT(*) OVER p AS n"
                   "    FROM metrics WHERE trial_id = ?1"
                   "    WINDOW p AS (PARTITION BY name), w AS (PARTITION BY name ORDER BY seq))"
                   "  WHERE n > ?2 AND i > 0"
                   "    AND (i * (?2 - 1)) / (n - 1) = ((i - 1) * (?2 - 1)) / (n - 1))");
    if (!stmt.ok()) return SqliteError(db_, "prepare downsample");
    stmt.Bind(1, trial_id).Bind(2, static_cast<int64_t>(max_points_per_name));
    return stmt.Run("downsample metrics");
  });
}

absl::Status SqliteStore::SaveSummary(const std::string& trial_id,
                                      const v1::TrainerSummary& summary) {
  // Kept as JSON so the table stays readable with the sqlite3 shell.
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(summary, &json);  // a proto always prints
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, "INSERT OR REPLACE INTO summaries(trial_id, json) VALUES(?,?)");
  stmt.Bind(1, trial_id).Bind(2, json);
  return stmt.Run("save summary of " + trial_id);
}

absl::Status SqliteStore::AppendLogs(const std::vector<v1::LogChunk>& chunks) {
  absl::MutexLock lock(&mu_);
  return InTransaction([&]() -> absl::Status {
    for (const v1::LogChunk& chunk : chunks) {
      Statement stmt(db_, "INSERT INTO logs(trial_id, rank, attempt, text) VALUES(?,?,?,?)");
      stmt.Bind(1, chunk.trial_id()).Bind(2, static_cast<int64_t>(chunk.rank()));
      stmt.Bind(3, static_cast<int64_t>(chunk.attempt())).Bind(4, chunk.text());
      if (absl::Status status = stmt.Run("append log"); !status.ok()) return status;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<v1::Experiment>> SqliteStore::LoadExperiments() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Experiment> experiments;
  std::map<std::string, size_t> index;
  {
    Statement stmt(db_, "SELECT id, proto FROM experiments ORDER BY created_unix_time, rowid");
    if (!stmt.ok()) return SqliteError(db_, "load experiments");
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      v1::Experiment experiment;
      if (!experiment.ParseFromString(stmt.Blob(1))) {
        return absl::DataLossError("sqlite: corrupt experiment " + stmt.Text(0));
      }
      index[experiment.id()] = experiments.size();
      experiments.push_back(std::move(experiment));
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "load experiments");
  }
  std::map<std::string, v1::Trial*> trials;
  {
    Statement stmt(db_, "SELECT experiment_id, id, proto FROM trials ORDER BY experiment_id, idx");
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      auto it = index.find(stmt.Text(0));
      if (it == index.end()) continue;
      v1::Trial* trial = experiments[it->second].add_trials();
      if (!trial->ParseFromString(stmt.Blob(2))) {
        return absl::DataLossError("sqlite: corrupt trial " + stmt.Text(1));
      }
      trials[trial->id()] = trial;
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "load trials");
  }
  {
    Statement stmt(db_,
                   "SELECT trial_id, from_state, to_state, unix_time, reason FROM transitions "
                   "ORDER BY seq");
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW) {
      auto it = trials.find(stmt.Text(0));
      if (it == trials.end()) continue;
      v1::TrialTransition* t = it->second->add_transitions();
      t->set_from(static_cast<v1::TrialState>(stmt.Int(1)));
      t->set_to(static_cast<v1::TrialState>(stmt.Int(2)));
      t->set_unix_time(stmt.Double(3));
      t->set_reason(stmt.Text(4));
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, "load transitions");
  }
  return experiments;
}

absl::StatusOr<std::map<std::string, v1::TrainerSummary>> SqliteStore::LoadSummaries() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, v1::TrainerSummary> summaries;
  Statement stmt(db_, "SELECT trial_id, json FROM summaries");
  int rc;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // written by a newer coordinator
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    v1::TrainerSummary summary;
    if (!google::protobuf::util::JsonStringToMessage(stmt.Text(1), &summary, options).ok()) {
      return absl::DataLossError(absl::StrCat("store: unreadable summary of ", stmt.Text(0)));
    }
    summaries[stmt.Text(0)] = std::move(summary);
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "load summaries");
  return summaries;
}

absl::StatusOr<std::vector<v1::MetricPoint>> SqliteStore::LoadMetrics(const std::string& trial_id,
                                                                      const std::string& name) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::MetricPoint> points;
  Statement stmt(db_,
                 "SELECT value, step, tokens, train_seconds, unix_time FROM metrics "
                 "WHERE trial_id = ? AND name = ? ORDER BY seq");
  stmt.Bind(1, trial_id).Bind(2, name);
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    v1::MetricPoint& p = points.emplace_back();
    p.set_trial_id(trial_id);
    p.set_name(name);
    p.set_value(stmt.Double(0));
    p.set_step(stmt.Int(1));
    p.set_tokens(stmt.Int(2));
    p.set_train_seconds(stmt.Double(3));
    p.set_unix_time(stmt.Double(4));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "load metrics");
  return points;
}

absl::StatusOr<std::vector<StoredLogChunk>> SqliteStore::ReadLogs(const std::string& trial_id,
                                                                  int rank, int64_t after_id) {
  absl::MutexLock lock(&mu_);
  std::vector<StoredLogChunk> chunks;
  Statement stmt(db_,
                 "SELECT id, attempt, text FROM logs WHERE trial_id = ? AND rank = ? AND id > ? "
                 "ORDER BY id");
  stmt.Bind(1, trial_id).Bind(2, static_cast<int64_t>(rank)).Bind(3, after_id);
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    StoredLogChunk& c = chunks.emplace_back();
    c.id = stmt.Int(0);
    c.chunk.set_trial_id(trial_id);
    c.chunk.set_rank(rank);
    c.chunk.set_attempt(static_cast<int>(stmt.Int(1)));
    c.chunk.set_text(stmt.Text(2));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "read logs");
  return chunks;
}

}  // namespace gauntlet
