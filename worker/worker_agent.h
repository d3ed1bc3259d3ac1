#ifndef GAUNTLET_WORKER_WORKER_AGENT_H_
#define GAUNTLET_WORKER_WORKER_AGENT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gauntlet/v1/trainer.pb.h"
#include "gauntlet/v1/worker.pb.h"
#include "common/clock.h"
#include "worker/coordinator_client.h"
#include "worker/launch_plan.h"
#include "worker/line_tailer.h"
#include "worker/process_launcher.h"

namespace gauntlet::worker {

// Serializes a trial spec as the YAML the trainer reads (common/spec_yaml.h in production).
using SpecToYaml = std::function<absl::StatusOr<std::string>(const v1::TrialSpec&)>;

struct WorkerAgentOptions {
  std::string worker_id;
  v1::WorkerInventory inventory;
  LaunchConfig launch;
  SpecToYaml spec_to_yaml;
  // Non-zero: heartbeat at this interval whatever the coordinator says.
  absl::Duration heartbeat_interval_override = absl::ZeroDuration();
  // Until the first reply tells us the coordinator's interval.
  absl::Duration default_heartbeat_interval = absl::Seconds(2);
  // New metric points are sent at most this long after the tick that read them.
  absl::Duration metrics_flush_interval = absl::Milliseconds(250);
  // SIGTERM, then SIGKILL after this long.
  absl::Duration kill_grace = absl::Seconds(10);
  absl::Duration min_backoff = absl::Milliseconds(500);
  // Reconnect backoff never exceeds this, nor a quarter of the coordinator's lease (so a worker
  // is back within its lease once the coordinator is: an outage never costs a restart).
  absl::Duration max_backoff = absl::Seconds(30);
  // Consecutive heartbeats refused as UNAUTHENTICATED/PERMISSION_DENIED after which the agent
  // gives up (fatal()); each refusal is logged. 0: never give up.
  int max_auth_failures = 5;
  // Appended to the log line of a failed heartbeat (e.g. how the channel is secured), so an
  // agent that cannot reach the coordinator says what to check.
  std::string unreachable_hint;
  // Where the agent records the gangs it started (an AgentRecord); empty: no record. An agent
  // restarted with the same record kills what its predecessor left running.
  std::string record_path;
  // Buffers kept while the coordinator is unreachable; the oldest data goes first.
  size_t max_pending_points_per_gang = 100000;
  size_t max_pending_log_bytes_per_gang = 8 << 20;
};

// The worker's control loop. Everything happens in Tick(now): reap exited ranks and stop failed
// gangs, escalate SIGTERM to SIGKILL, tail event and log files, heartbeat (when due) and apply
// the reply's actions, then forward metrics, logs and exits. RPCs are synchronous with short
// deadlines; while the coordinator is unreachable only the heartbeat is retried (with
// exponential backoff) and reports are buffered, so a restarted coordinator gets them all.
class WorkerAgent {
 public:
  WorkerAgent(WorkerAgentOptions options, CoordinatorClient* client, ProcessLauncher* launcher);
  ~WorkerAgent();

  // Reads the record a previous agent left, kills the trainers still running from it (a new
  // agent cannot wait for them, and they must not write beside the next attempt) and queues
  // their exits for the coordinator. Call once, before the first Tick.
  void AdoptOrphans();

  void Tick(absl::Time now);
  // The coordinator has an action waiting (ActionStream): heartbeat at the next Tick, and wake
  // Run from its sleep. Thread-safe.
  void Wake();

  // Starts stopping every gang (worker shutdown). Keep ticking until AllExited().
  void StopAll(absl::Time now, absl::string_view reason);
  // No live process, and every exit has been reported (or could not be).
  bool AllExited() const;
  // Drives Tick from `clock` every `period` until `stop()` returns true; then stops every gang
  // and keeps ticking until they exited and were reported or `shutdown_timeout` passed.
  // Deregisters from the coordinator at the end. Returns early when fatal() is set.
  void Run(const Clock* clock, absl::Duration period, const std::function<bool()>& stop,
           absl::Duration shutdown_timeout);
  // Set when the agent cannot go on (the coordinator keeps refusing its credentials).
  const absl::Status& fatal() const { return fatal_; }

  // What the next heartbeat reports.
  std::vector<v1::ProcessStatus> ProcessStatuses() const;
  bool connected() const { return connected_; }
  absl::Time next_heartbeat() const { return next_heartbeat_; }

 private:
  struct Rank;
  struct Gang;

  void PollProcesses(absl::Time now);
  void EscalateKills(absl::Time now);
  void ReadOutputs(Gang& gang, bool drain);
  void Finalize(Gang& gang);
  void MaybeHeartbeat(absl::Time now);
  void ApplyAction(const v1::WorkerAction& action, absl::Time now);
  void Launch(const v1::LaunchTrial& launch, absl::Time now);
  void StopGang(Gang& gang, absl::Time now, std::string reason, bool requested);
  void Flush(absl::Time now);
  void CollectFinished();
  // Records an RPC failure: retryable ones drop the connection and schedule a backoff.
  bool HandleRpcError(const absl::Status& status, absl::string_view what, absl::Time now);
  Gang* FindGang(const std::string& trial_id, int attempt);
  // Rewrites the record of live gangs (see record_path).
  void SaveRecord();
  absl::Duration MaxBackoff() const;

  WorkerAgentOptions options_;
  CoordinatorClient* client_;
  ProcessLauncher* launcher_;
  std::vector<std::unique_ptr<Gang>> gangs_;
  bool connected_ = false;
  // A failed heartbeat is logged once per outage, the first one after start-up included.
  bool unreachable_logged_ = false;
  absl::Time next_heartbeat_ = absl::InfinitePast();
  absl::Duration heartbeat_interval_;
  absl::Duration backoff_;
  absl::Time last_metrics_flush_ = absl::InfinitePast();
  absl::Duration lease_ = absl::InfiniteDuration();
  int auth_failures_ = 0;
  absl::Status fatal_;
  absl::Mutex wake_mu_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
};

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_WORKER_AGENT_H_
