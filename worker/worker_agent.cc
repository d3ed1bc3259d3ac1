#include "worker/worker_agent.h"

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace gauntlet::worker {
namespace {

// mkdir -p.
absl::Status MakeDirs(const std::string& path) {
  for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
    const std::string prefix = path.substr(0, end);
    if (!prefix.empty() && mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("mkdir ", prefix, ": ", std::strerror(errno)));
    }
    if (end == std::string::npos) return absl::OkStatus();
  }
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << contents;
    out.close();
    if (!out) return absl::FailedPreconditionError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("rename ", tmp, " -> ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Field 22 of /proc/<pid>/stat (start time in clock ticks), or 0 when the process is gone.
uint64_t StartTicks(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  uint64_t ticks = 0;
  // Field 3 (state) is fields[0], so field 22 is fields[19].
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &ticks)) return 0;
  return ticks;
}

bool IsAuthError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnauthenticated ||
         status.code() == absl::StatusCode::kPermissionDenied;
}

// Makes `attempt` the owner of the trial's checkpoint directory. Attempts only grow, so an older
// one never takes it back: FAILED_PRECONDITION when a newer attempt already owns it.
absl::Status ClaimFence(const std::string& path, int attempt) {
  std::ifstream in(path);
  int owner = 0;
  if (std::string text; in && std::getline(in, text) && absl::SimpleAtoi(text, &owner) &&
      owner > attempt) {
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: attempt ", owner, " already owns ", path));
  }
  return WriteFileAtomically(path, absl::StrCat(attempt, "\n"));
}

bool Retryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kUnimplemented:  // a coordinator mid-upgrade
      return true;
    default:
      return false;
  }
}

void Log(absl::string_view message) { std::cerr << "worker: " << message << std::endl; }

}  // namespace

struct WorkerAgent::Rank {
  RankPlan plan;
  int pid = -1;
  std::optional<int> exit_code;
  std::unique_ptr<LineTailer> stdout_tail;
  std::unique_ptr<LineTailer> stderr_tail;
  std::string last_stderr_line;
};

struct WorkerAgent::Gang {
  std::string trial_id;
  int attempt = 0;
  std::vector<Rank> ranks;
  std::unique_ptr<LineTailer> events;
  v1::ProcessState state = v1::PROCESS_STATE_STARTING;

  bool stopping = false;
  bool stop_requested = false;  // by the coordinator or the worker's shutdown, not a failure
  std::string stop_reason;
  absl::Time kill_deadline = absl::InfiniteFuture();
  bool killed = false;

  // The first rank that failed while nobody was stopping the gang.
  std::optional<int> failed_rank;
  std::optional<v1::TrainerError> trainer_error;
  // Set when the worker could not start the gang; that is its exit reason, code
  // `launch_error_code`.
  std::string launch_error;
  int launch_error_code = v1::TRAINER_EXIT_OTHER;
  // The worker's own fault (work dir, trainer binary), as opposed to a stale attempt.
  bool launch_failed = false;
  std::optional<v1::TrainerSummary> summary;
  int64_t bad_event_lines = 0;

  int exit_code = 0;
  std::string reason;
  bool exit_reported = false;
  bool exit_in_heartbeat = false;

  std::deque<v1::MetricPoint> pending_points;
  std::deque<v1::LogChunk> pending_logs;
  size_t pending_log_bytes = 0;
};

WorkerAgent::WorkerAgent(WorkerAgentOptions options, CoordinatorClient* client,
                         ProcessLauncher* launcher)
    : options_(std::move(options)),
      client_(client),
      launcher_(launcher),
      heartbeat_interval_(options_.heartbeat_interval_override > absl::ZeroDuration()
                              ? options_.heartbeat_interval_override
                              : options_.default_heartbeat_interval),
      backoff_(options_.min_backoff) {}

WorkerAgent::~WorkerAgent() = default;

void WorkerAgent::Tick(absl::Time now) {
  PollProcesses(now);
  EscalateKills(now);
  for (auto& gang : gangs_) {
    if (gang->state != v1::PROCESS_STATE_EXITED) ReadOutputs(*gang, /*drain=*/false);
  }
  MaybeHeartbeat(now);
  Flush(now);
  CollectFinished();
}

void WorkerAgent::PollProcesses(absl::Time now) {
  for (auto& gang_ptr : gangs_) {
    Gang& gang = *gang_ptr;
    if (gang.state == v1::PROCESS_STATE_EXITED) continue;
    bool all_exited = true;
    for (Rank& rank : gang.ranks) {
      if (!rank.exit_code.has_value() && rank.pid > 0) {
        rank.exit_code = launcher_->Poll(rank.pid);
        if (rank.exit_code.has_value() && *rank.exit_code != 0 && !gang.stopping) {
          // One rank down means its peers hang in their next collective: stop them all.
          gang.failed_rank = rank.plan.rank;
          StopGang(gang, now,
                   absl::StrCat("rank ", rank.plan.rank, " exited with code ", *rank.exit_code),
                   /*requested=*/false);
        }
      }
      if (!rank.exit_code.has_value()) all_exited = false;
    }
    if (all_exited) Finalize(gang);
  }
}

void WorkerAgent::EscalateKills(absl::Time now) {
  for (auto& gang : gangs_) {
    if (!gang->stopping || gang->killed || now < gang->kill_deadline) continue;
    gang->killed = true;
    for (Rank& rank : gang->ranks) {
      if (rank.pid > 0 && !rank.exit_code.has_value()) {
        Log(absl::StrCat(gang->trial_id, " rank ", rank.plan.rank,
                         " ignored SIGTERM; sending SIGKILL"));
        launcher_->SignalGroup(rank.pid, SIGKILL).IgnoreError();
      }
    }
  }
}

void WorkerAgent::StopGang(Gang& gang, absl::Time now, std::string reason, bool requested) {
  if (gang.stopping || gang.state == v1::PROCESS_STATE_EXITED) return;
  gang.stopping = true;
  gang.stop_requested = requested;
  gang.stop_reason = std::move(reason);
  gang.kill_deadline = now + options_.kill_grace;
  for (Rank& rank : gang.ranks) {
    if (rank.pid > 0 && !rank.exit_code.has_value()) {
      launcher_->SignalGroup(rank.pid, SIGTERM).IgnoreError();
    }
  }
}

void WorkerAgent::ReadOutputs(Gang& gang, bool drain) {
  auto read = [drain](LineTailer& tail) -> std::vector<std::string> {
    absl::StatusOr<std::vector<std::string>> lines = drain ? tail.Drain() : tail.ReadLines();
    if (!lines.ok()) {
      Log(lines.status().ToString());
      return {};
    }
    return *std::move(lines);
  };
  if (gang.events != nullptr) {
    google::protobuf::util::JsonParseOptions parse_options;
    parse_options.ignore_unknown_fields = true;  // a newer trainer may add fields
    for (const std::string& line : read(*gang.events)) {
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      v1::TrainerEvent event;
      if (!google::protobuf::util::JsonStringToMessage(line, &event, parse_options).ok()) {
        if (gang.bad_event_lines++ == 0) {
          Log(absl::StrCat(gang.trial_id, ": unparsable event line in ", gang.events->path(),
                           ": ", line.substr(0, 200)));
        }
        continue;
      }
      switch (event.event_case()) {
        case v1::TrainerEvent::kMetric: {
          v1::MetricPoint point = event.metric();
          point.set_trial_id(gang.trial_id);
          gang.pending_points.push_back(std::move(point));
          if (gang.pending_points.size() > options_.max_pending_points_per_gang) {
            gang.pending_points.pop_front();
          }
          break;
        }
        case v1::TrainerEvent::kSummary:
          gang.summary = event.summary();
          break;
        case v1::TrainerEvent::kError:
          gang.trainer_error = event.error();
          break;
        case v1::TrainerEvent::kStarted: {
          // Where this attempt resumed: the coordinator computes the steps a restart lost.
          v1::MetricPoint point;
          point.set_trial_id(gang.trial_id);
          point.set_name("resumed_from_step");
          point.set_value(static_cast<double>(event.started().resumed_from_step()));
          point.set_step(event.started().resumed_from_step());
          gang.pending_points.push_back(std::move(point));
          break;
        }
        case v1::TrainerEvent::EVENT_NOT_SET:
          break;
      }
    }
  }
  for (Rank& rank : gang.ranks) {
    if (rank.stdout_tail == nullptr) continue;
    std::string text;
    for (const std::string& line : read(*rank.stdout_tail)) absl::StrAppend(&text, line, "\n");
    for (const std::string& line : read(*rank.stderr_tail)) {
      if (!absl::StripAsciiWhitespace(line).empty()) rank.last_stderr_line = line;
      absl::StrAppend(&text, line, "\n");
    }
    if (text.empty()) continue;
    gang.pending_log_bytes += text.size();
    v1::LogChunk& chunk = gang.pending_logs.emplace_back();
    chunk.set_trial_id(gang.trial_id);
    chunk.set_rank(rank.plan.rank);
    chunk.set_attempt(gang.attempt);
    chunk.set_text(std::move(text));
    while (gang.pending_log_bytes > options_.max_pending_log_bytes_per_gang &&
           gang.pending_logs.size() > 1) {
      gang.pending_log_bytes -= gang.pending_logs.front().text().size();
      gang.pending_logs.pop_front();
    }
  }
}

void WorkerAgent::Finalize(Gang& gang) {
  ReadOutputs(gang, /*drain=*/true);
  gang.state = v1::PROCESS_STATE_EXITED;
  gang.exit_code = 0;
  const Rank* failing = nullptr;
  for (const Rank& rank : gang.ranks) {
    if (gang.failed_rank.has_value() ? rank.plan.rank == *gang.failed_rank
                                     : rank.exit_code.value_or(0) != 0) {
      failing = &rank;
      break;
    }
  }
  if (failing != nullptr) gang.exit_code = failing->exit_code.value_or(1);
  if (!gang.launch_error.empty()) {
    gang.exit_code = gang.launch_error_code;
    gang.reason = gang.launch_error;
  } else if (gang.stop_requested) {
    gang.reason = absl::StrCat("stopped: ", gang.stop_reason);
  } else if (failing != nullptr) {
    const int code = gang.exit_code;
    if (gang.trainer_error.has_value() && !gang.trainer_error->reason().empty()) {
      gang.reason = gang.trainer_error->reason();
    } else if (code > 128) {
      gang.reason = absl::StrCat("rank ", failing->plan.rank, " killed by signal ", code - 128,
                                 failing->last_stderr_line.empty() ? "" : "; last stderr: ",
                                 failing->last_stderr_line);
    } else if (!failing->last_stderr_line.empty()) {
      gang.reason = failing->last_stderr_line;
    } else {
      gang.reason = absl::StrCat("rank ", failing->plan.rank, " exited with code ", code);
    }
  }
  Log(absl::StrCat(gang.trial_id, " attempt ", gang.attempt, " exited with code ",
                   gang.exit_code, gang.reason.empty() ? "" : ": ", gang.reason));
  SaveRecord();
}

void WorkerAgent::Wake() {
  absl::MutexLock lock(&wake_mu_);
  wake_ = true;
}

void WorkerAgent::MaybeHeartbeat(absl::Time now) {
  bool woken;
  {
    absl::MutexLock lock(&wake_mu_);
    woken = std::exchange(wake_, false);
  }
  if (now < next_heartbeat_ && !woken) return;
  v1::HeartbeatRequest request;
  request.set_worker_id(options_.worker_id);
  *request.mutable_inventory() = options_.inventory;
  for (v1::ProcessStatus& status : ProcessStatuses()) {
    *request.add_processes() = std::move(status);
  }
  absl::StatusOr<v1::HeartbeatResponse> response = client_->Heartbeat(request);
  if (!response.ok()) {
    if (IsAuthError(response.status())) {
      // Loud every time: a worker that cannot authenticate is useless and must not look idle.
      ++auth_failures_;
      Log(absl::StrCat("ERROR: the coordinator refused this worker's credentials (",
                       auth_failures_, options_.max_auth_failures > 0
                                           ? absl::StrCat(" of ", options_.max_auth_failures)
                                           : std::string(),
                       "): ", response.status().ToString(), "; check --auth_token_file"));
      if (options_.max_auth_failures > 0 && auth_failures_ >= options_.max_auth_failures) {
        fatal_ = absl::UnauthenticatedError(absl::StrCat(
            "the coordinator refused this worker's credentials ", auth_failures_,
            " times in a row: ", response.status().message()));
      }
    } else if (!unreachable_logged_) {
      Log(absl::StrCat("heartbeat failed: ", response.status().ToString(),
                       options_.unreachable_hint));
      unreachable_logged_ = true;
    }
    connected_ = false;
    next_heartbeat_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, MaxBackoff());
    return;
  }
  if (!connected_) Log("connected to the coordinator");
  connected_ = true;
  unreachable_logged_ = false;
  auth_failures_ = 0;
  backoff_ = options_.min_backoff;
  if (response->lease_seconds() > 0) lease_ = absl::Seconds(response->lease_seconds());
  if (options_.heartbeat_interval_override <= absl::ZeroDuration() &&
      response->interval_seconds() > 0) {
    heartbeat_interval_ = absl::Seconds(response->interval_seconds());
  }
  next_heartbeat_ = now + heartbeat_interval_;
  for (auto& gang : gangs_) {
    if (gang->state == v1::PROCESS_STATE_EXITED) gang->exit_in_heartbeat = true;
  }
  for (const v1::WorkerAction& action : response->actions()) ApplyAction(action, now);
}

void WorkerAgent::ApplyAction(const v1::WorkerAction& action, absl::Time now) {
  switch (action.action_case()) {
    case v1::WorkerAction::kLaunch:
      Launch(action.launch(), now);
      break;
    case v1::WorkerAction::kStop:
      for (auto& gang : gangs_) {
        if (gang->trial_id == action.stop().trial_id() &&
            (action.stop().attempt() == 0 || gang->attempt == action.stop().attempt())) {
          StopGang(*gang, now, action.stop().reason(), /*requested=*/true);
        }
      }
      break;
    case v1::WorkerAction::ACTION_NOT_SET:
      break;
  }
}

WorkerAgent::Gang* WorkerAgent::FindGang(const std::string& trial_id, int attempt) {
  for (auto& gang : gangs_) {
    if (gang->trial_id == trial_id && gang->attempt == attempt) return gang.get();
  }
  return nullptr;
}

void WorkerAgent::Launch(const v1::LaunchTrial& launch, absl::Time now) {
  // The coordinator repeats a launch until a heartbeat shows it: launching is idempotent.
  if (FindGang(launch.trial_id(), launch.attempt()) != nullptr) return;
  for (auto& gang : gangs_) {
    if (gang->trial_id == launch.trial_id() && gang->state != v1::PROCESS_STATE_EXITED) {
      StopGang(*gang, now, absl::StrCat("superseded by attempt ", launch.attempt()), true);
    }
  }
  auto gang = std::make_unique<Gang>();
  gang->trial_id = launch.trial_id();
  gang->attempt = launch.attempt();
  Gang& g = *gang;
  gangs_.push_back(std::move(gang));

  auto fail = [&](const absl::Status& status) {
    Log(absl::StrCat(g.trial_id, " attempt ", g.attempt, ": launch failed: ", status.ToString()));
    g.launch_error = absl::StrCat("launch failed: ", status.message());
    g.launch_failed = true;
    // Ranks already started are stopped; once they exit the gang reports the launch error.
    StopGang(g, now, g.launch_error, /*requested=*/false);
    for (Rank& rank : g.ranks) {
      if (rank.pid < 0) rank.exit_code = 1;  // never started
    }
  };

  absl::StatusOr<GangPlan> plan = PlanLaunch(launch, options_.launch);
  if (!plan.ok()) {
    // The action itself is unusable here (a path outside this worker's data roots, ...): the
    // spec's fault, not the worker's, and the same spec fails the same way anywhere.
    fail(plan.status());
    g.launch_failed = false;
    g.launch_error_code = v1::TRAINER_EXIT_BAD_SPEC;
    Finalize(g);
    return;
  }
  g.state = v1::PROCESS_STATE_RUNNING;
  for (const RankPlan& r : plan->ranks) g.ranks.push_back(Rank{r});
  absl::Status status = MakeDirs(plan->attempt_dir);
  for (const RankPlan& r : plan->ranks) {
    if (status.ok()) status = MakeDirs(r.dir);
  }
  if (status.ok()) status = MakeDirs(plan->checkpoint_dir);
  if (status.ok()) {
    // The fencing token is claimed before any rank starts: from here on a trainer of an older
    // attempt stops at its next check and never writes into the directory again.
    if (absl::Status fenced = ClaimFence(plan->fence_path, g.attempt); !fenced.ok()) {
      if (!absl::IsFailedPrecondition(fenced)) {
        status = fenced;
      } else {
        Log(absl::StrCat(g.trial_id, " attempt ", g.attempt, ": ", fenced.message()));
        g.launch_error = std::string(fenced.message());
        g.launch_error_code = v1::TRAINER_EXIT_FENCED;
        for (Rank& rank : g.ranks) rank.exit_code = v1::TRAINER_EXIT_FENCED;
        Finalize(g);
        return;
      }
    }
  }
  if (status.ok()) {
    absl::StatusOr<std::string> yaml =
        options_.spec_to_yaml ? options_.spec_to_yaml(plan->spec)
                              : absl::FailedPreconditionError("no spec serializer configured");
    status = yaml.ok() ? WriteFileAtomically(plan->spec_path, *yaml) : yaml.status();
  }
  if (!plan->events_path.empty()) {
    // A restarted worker may re-launch an attempt: start from an empty events file.
    std::remove(plan->events_path.c_str());
    g.events = std::make_unique<LineTailer>(plan->events_path);
  }
  for (Rank& rank : g.ranks) {
    if (!status.ok()) break;
    rank.stdout_tail = std::make_unique<LineTailer>(rank.plan.process.stdout_path);
    rank.stderr_tail = std::make_unique<LineTailer>(rank.plan.process.stderr_path);
    // Skip output of an earlier run of the same attempt directory.
    rank.stdout_tail->Drain().IgnoreError();
    rank.stderr_tail->Drain().IgnoreError();
    absl::StatusOr<int> pid = launcher_->Launch(rank.plan.process);
    if (!pid.ok()) {
      status = pid.status();
      break;
    }
    rank.pid = *pid;
  }
  if (!status.ok()) {
    fail(status);
    return;
  }
  SaveRecord();
  Log(absl::StrCat("launched ", g.trial_id, " attempt ", g.attempt, " (", g.ranks.size(),
                   " ranks)"));
}

void WorkerAgent::Flush(absl::Time now) {
  if (!connected_) return;
  // Metrics first, then logs, then exits: the coordinator sees a trial's last points before it
  // learns that the trial ended.
  if (now >= last_metrics_flush_ + options_.metrics_flush_interval) {
    for (auto& gang : gangs_) {
      if (gang->pending_points.empty()) continue;
      v1::ReportMetricsRequest request;
      request.set_worker_id(options_.worker_id);
      request.set_attempt(gang->attempt);
      for (const v1::MetricPoint& p : gang->pending_points) *request.add_points() = p;
      // The interval runs from the last send, so the first point after a quiet spell goes out
      // at once and a steady stream is batched.
      last_metrics_flush_ = now;
      absl::Status status = client_->ReportMetrics(request);
      if (!status.ok() && HandleRpcError(status, "ReportMetrics", now)) return;
      gang->pending_points.clear();
    }
  }
  v1::ReportLogsRequest logs;
  logs.set_worker_id(options_.worker_id);
  for (auto& gang : gangs_) {
    for (v1::LogChunk& chunk : gang->pending_logs) *logs.add_chunks() = std::move(chunk);
  }
  if (logs.chunks_size() > 0) {
    absl::Status status = client_->ReportLogs(logs);
    if (!status.ok() && HandleRpcError(status, "ReportLogs", now)) {
      // Put them back in order for the next attempt.
      for (auto& gang : gangs_) gang->pending_logs.clear();
      for (v1::LogChunk& chunk : *logs.mutable_chunks()) {
        for (auto& gang : gangs_) {
          if (gang->trial_id == chunk.trial_id() && gang->attempt == chunk.attempt()) {
            gang->pending_logs.push_back(std::move(chunk));
            break;
          }
        }
      }
      return;
    }
    for (auto& gang : gangs_) {
      gang->pending_logs.clear();
      gang->pending_log_bytes = 0;
    }
  }
  for (auto& gang : gangs_) {
    if (gang->state != v1::PROCESS_STATE_EXITED || gang->exit_reported) continue;
    // The exit goes last: the coordinator has stored the gang's final metrics and logs before
    // it learns that the trial ended.
    if (!gang->pending_points.empty() || !gang->pending_logs.empty()) continue;
    v1::ReportTrialExitRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_trial_id(gang->trial_id);
    request.set_attempt(gang->attempt);
    request.set_exit_code(gang->exit_code);
    request.set_reason(gang->reason);
    if (gang->summary.has_value()) *request.mutable_summary() = *gang->summary;
    request.set_launch_failed(gang->launch_failed);
    absl::Status status = client_->ReportTrialExit(request);
    if (!status.ok() && HandleRpcError(status, "ReportTrialExit", now)) return;
    gang->exit_reported = true;
  }
}

absl::Duration WorkerAgent::MaxBackoff() const {
  return std::max(options_.min_backoff, std::min(options_.max_backoff, lease_ / 4));
}

bool WorkerAgent::HandleRpcError(const absl::Status& status, absl::string_view what,
                                 absl::Time now) {
  if (Retryable(status)) {
    Log(absl::StrCat(what, " failed, will retry: ", status.ToString()));
    connected_ = false;
    next_heartbeat_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, MaxBackoff());
    return true;
  }
  // The coordinator rejected the data itself (e.g. a trial it no longer knows): retrying
  // cannot help, so it is dropped.
  Log(absl::StrCat(what, " rejected, dropping: ", status.ToString()));
  return false;
}

void WorkerAgent::CollectFinished() {
  gangs_.erase(std::remove_if(gangs_.begin(), gangs_.end(),
                              [](const std::unique_ptr<Gang>& g) {
                                return g->state == v1::PROCESS_STATE_EXITED &&
                                       g->exit_reported && g->exit_in_heartbeat &&
                                       g->pending_logs.empty();
                              }),
               gangs_.end());
}

void WorkerAgent::StopAll(absl::Time now, absl::string_view reason) {
  for (auto& gang : gangs_) StopGang(*gang, now, std::string(reason), /*requested=*/true);
}

bool WorkerAgent::AllExited() const {
  for (const auto& gang : gangs_) {
    if (gang->state != v1::PROCESS_STATE_EXITED || !gang->exit_reported) return false;
  }
  return true;
}

void WorkerAgent::Run(const Clock* clock, absl::Duration period,
                      const std::function<bool()>& stop, absl::Duration shutdown_timeout) {
  while (!stop() && fatal_.ok()) {
    const absl::Time start = clock->Now();
    Tick(start);
    absl::MutexLock lock(&wake_mu_);
    clock->AwaitWithTimeout(&wake_mu_, absl::Condition(&wake_), period - (clock->Now() - start));
  }
  const absl::Time deadline = clock->Now() + shutdown_timeout;
  StopAll(clock->Now(), "worker shutting down");
  while (clock->Now() < deadline) {
    Tick(clock->Now());
    if (AllExited()) break;
    clock->SleepFor(period);
  }
  if (!fatal_.ok()) return;
  // Said, not left to the lease: the coordinator requeues this worker's trials now and places
  // nothing more on it.
  v1::DeregisterRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_reason("worker shutting down");
  if (absl::Status status = client_->Deregister(request); !status.ok()) {
    Log(absl::StrCat("could not deregister (the lease will expire instead): ", status.ToString()));
  } else {
    Log("deregistered from the coordinator");
  }
}

void WorkerAgent::SaveRecord() {
  if (options_.record_path.empty()) return;
  v1::AgentRecord record;
  for (const auto& gang : gangs_) {
    if (gang->state == v1::PROCESS_STATE_EXITED) continue;
    v1::AgentRecord::Gang* g = record.add_gangs();
    g->set_trial_id(gang->trial_id);
    g->set_attempt(gang->attempt);
    for (const Rank& rank : gang->ranks) {
      if (rank.pid <= 0 || rank.exit_code.has_value()) continue;
      v1::AgentRecord::Process* p = g->add_processes();
      p->set_pid(rank.pid);
      p->set_start_ticks(StartTicks(rank.pid));
    }
  }
  if (absl::Status s = WriteFileAtomically(options_.record_path, record.SerializeAsString());
      !s.ok()) {
    Log(absl::StrCat("cannot write the agent record: ", s.ToString()));
  }
}

void WorkerAgent::AdoptOrphans() {
  if (options_.record_path.empty()) return;
  std::ifstream in(options_.record_path, std::ios::binary);
  if (!in) return;
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  v1::AgentRecord record;
  if (!record.ParseFromString(bytes)) {
    Log(absl::StrCat("ignoring an unreadable agent record ", options_.record_path));
    return;
  }
  for (const v1::AgentRecord::Gang& recorded : record.gangs()) {
    int killed = 0;
    for (const v1::AgentRecord::Process& p : recorded.processes()) {
      // Only the process the record names, not a later one that reused its pid.
      if (p.pid() <= 0 || p.start_ticks() == 0 || StartTicks(p.pid()) != p.start_ticks()) continue;
      launcher_->SignalGroup(p.pid(), SIGKILL).IgnoreError();
      ++killed;
    }
    Log(absl::StrCat("previous agent's ", recorded.trial_id(), " attempt ", recorded.attempt(),
                     ": killed ", killed, " trainer process(es) still running"));
    auto gang = std::make_unique<Gang>();
    gang->trial_id = recorded.trial_id();
    gang->attempt = recorded.attempt();
    gang->state = v1::PROCESS_STATE_EXITED;
    gang->exit_code = 128 + SIGKILL;
    gang->reason = "the worker agent restarted; the attempt's trainers were killed";
    gangs_.push_back(std::move(gang));
  }
  SaveRecord();
}

std::vector<v1::ProcessStatus> WorkerAgent::ProcessStatuses() const {
  std::vector<v1::ProcessStatus> statuses;
  for (const auto& gang : gangs_) {
    v1::ProcessStatus& s = statuses.emplace_back();
    s.set_trial_id(gang->trial_id);
    s.set_attempt(gang->attempt);
    s.set_state(gang->state);
    for (const Rank& rank : gang->ranks) s.add_ranks(rank.plan.rank);
    if (gang->state == v1::PROCESS_STATE_EXITED) {
      s.set_exit_code(gang->exit_code);
      s.set_reason(gang->reason);
    }
  }
  return statuses;
}

}  // namespace gauntlet::worker
