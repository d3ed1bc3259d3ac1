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
  std::string last_json_stdout_line;
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
  // Set when the worker could not start the gang; that is its exit reason, code 1.
  std::string launch_error;
  std::string summary_json;
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
        case v1::TrainerEvent::kSummary: {
          google::protobuf::util::JsonPrintOptions print_options;
          print_options.preserve_proto_field_names = true;
          // A summary proto always serializes; nothing to handle on the error path.
          (void)google::protobuf::util::MessageToJsonString(event.summary(), &gang.summary_json,
                                                            print_options);
          break;
        }
        case v1::TrainerEvent::kError:
          gang.trainer_error = event.error();
          break;
        case v1::TrainerEvent::kStarted:
        case v1::TrainerEvent::EVENT_NOT_SET:
          break;
      }
    }
  }
  for (Rank& rank : gang.ranks) {
    if (rank.stdout_tail == nullptr) continue;
    std::string text;
    for (const std::string& line : read(*rank.stdout_tail)) {
      if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "{")) {
        rank.last_json_stdout_line = line;
      }
      absl::StrAppend(&text, line, "\n");
    }
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
  if (gang.summary_json.empty()) {
    for (const Rank& rank : gang.ranks) {
      if (rank.plan.rank == 0) gang.summary_json = rank.last_json_stdout_line;
    }
  }
  if (!gang.launch_error.empty()) {
    gang.exit_code = 1;
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
}

void WorkerAgent::MaybeHeartbeat(absl::Time now) {
  if (now < next_heartbeat_) return;
  v1::HeartbeatRequest request;
  request.set_worker_id(options_.worker_id);
  *request.mutable_inventory() = options_.inventory;
  for (v1::ProcessStatus& status : ProcessStatuses()) {
    *request.add_processes() = std::move(status);
  }
  absl::StatusOr<v1::HeartbeatResponse> response = client_->Heartbeat(request);
  if (!response.ok()) {
    if (connected_) Log(absl::StrCat("heartbeat failed: ", response.status().ToString()));
    connected_ = false;
    next_heartbeat_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    return;
  }
  if (!connected_) Log("connected to the coordinator");
  connected_ = true;
  backoff_ = options_.min_backoff;
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
    // Ranks already started are stopped; once they exit the gang reports the launch error.
    StopGang(g, now, g.launch_error, /*requested=*/false);
    for (Rank& rank : g.ranks) {
      if (rank.pid < 0) rank.exit_code = 1;  // never started
    }
  };

  absl::StatusOr<GangPlan> plan = PlanLaunch(launch, options_.launch);
  if (!plan.ok()) {
    fail(plan.status());
    Finalize(g);
    return;
  }
  g.state = v1::PROCESS_STATE_RUNNING;
  for (const RankPlan& r : plan->ranks) g.ranks.push_back(Rank{r});
  absl::Status status = MakeDirs(plan->attempt_dir);
  for (const RankPlan& r : plan->ranks) {
    if (status.ok()) status = MakeDirs(r.dir);
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
    if (!gang->pending_points.empty()) continue;  // wait for the next metrics flush
    v1::ReportTrialExitRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_trial_id(gang->trial_id);
    request.set_attempt(gang->attempt);
    request.set_exit_code(gang->exit_code);
    request.set_reason(gang->reason);
    request.set_summary_json(gang->summary_json);
    absl::Status status = client_->ReportTrialExit(request);
    if (!status.ok() && HandleRpcError(status, "ReportTrialExit", now)) return;
    gang->exit_reported = true;
  }
}

bool WorkerAgent::HandleRpcError(const absl::Status& status, absl::string_view what,
                                 absl::Time now) {
  if (Retryable(status)) {
    Log(absl::StrCat(what, " failed, will retry: ", status.ToString()));
    connected_ = false;
    next_heartbeat_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
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

void WorkerAgent::Run(Clock* clock, absl::Duration period, const std::function<bool()>& stop,
                      absl::Duration shutdown_timeout) {
  while (!stop()) {
    const absl::Time start = clock->Now();
    Tick(start);
    clock->SleepFor(period - (clock->Now() - start));
  }
  const absl::Time deadline = clock->Now() + shutdown_timeout;
  StopAll(clock->Now(), "worker shutting down");
  while (clock->Now() < deadline) {
    Tick(clock->Now());
    if (AllExited()) break;
    clock->SleepFor(period);
  }
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
