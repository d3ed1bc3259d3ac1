#include "worker/worker_agent.h"

#include <signal.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "common/testing/fake_clock.h"
#include "google/protobuf/util/json_util.h"

namespace gauntlet::worker {
namespace {

// Records every RPC; `down` makes every call fail UNAVAILABLE like an unreachable coordinator.
class FakeCoordinatorClient : public CoordinatorClient {
 public:
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override {
    ++calls;
    if (down) return absl::UnavailableError("connection refused");
    if (bad_token) return absl::UnauthenticatedError("missing or wrong bearer token");
    heartbeats.push_back(request);
    v1::HeartbeatResponse response;
    response.set_interval_seconds(interval_seconds);
    response.set_lease_seconds(lease_seconds);
    for (const v1::WorkerAction& a : next_actions) *response.add_actions() = a;
    next_actions.clear();
    return response;
  }
  absl::Status ReportMetrics(const v1::ReportMetricsRequest& request) override {
    ++calls;
    if (down) return absl::UnavailableError("connection refused");
    metrics.push_back(request);
    return absl::OkStatus();
  }
  absl::Status ReportTrialExit(const v1::ReportTrialExitRequest& request) override {
    ++calls;
    if (down) return absl::UnavailableError("connection refused");
    exits.push_back(request);
    return absl::OkStatus();
  }
  absl::Status ReportLogs(const v1::ReportLogsRequest& request) override {
    ++calls;
    if (down) return absl::UnavailableError("connection refused");
    logs.push_back(request);
    return absl::OkStatus();
  }
  absl::Status Deregister(const v1::DeregisterRequest& request) override {
    ++calls;
    if (down) return absl::UnavailableError("connection refused");
    deregistered.push_back(request);
    return absl::OkStatus();
  }

  std::string AllLogText(int rank) const {
    std::string text;
    for (const auto& r : logs) {
      for (const auto& c : r.chunks()) {
        if (c.rank() == rank) text += c.text();
      }
    }
    return text;
  }

  bool down = false;
  bool bad_token = false;
  int calls = 0;
  double interval_seconds = 2;
  double lease_seconds = 0;
  std::vector<v1::WorkerAction> next_actions;
  std::vector<v1::HeartbeatRequest> heartbeats;
  std::vector<v1::ReportMetricsRequest> metrics;
  std::vector<v1::ReportTrialExitRequest> exits;
  std::vector<v1::ReportLogsRequest> logs;
  std::vector<v1::DeregisterRequest> deregistered;
};

// Processes that exist only in the test: it decides when they exit. SIGTERM ends a process
// (code 143) unless it is marked stubborn; SIGKILL always does (137).
class FakeLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<int> Launch(const ProcessOptions& options) override {
    if (fail_launch_number == static_cast<int>(launched.size())) {
      return absl::FailedPreconditionError("cannot start /bin/trainer: exec failed");
    }
    launched.push_back(options);
    return 1000 + static_cast<int>(launched.size()) - 1;
  }
  std::optional<int> Poll(int pid) override {
    auto it = exit_codes.find(pid);
    if (it == exit_codes.end()) return std::nullopt;
    return it->second;
  }
  absl::Status SignalGroup(int pid, int signal) override {
    signals.emplace_back(pid, signal);
    if (exit_codes.count(pid)) return absl::OkStatus();
    if (signal == SIGKILL) exit_codes[pid] = 128 + SIGKILL;
    if (signal == SIGTERM && !stubborn.count(pid)) exit_codes[pid] = 128 + SIGTERM;
    return absl::OkStatus();
  }

  std::string Env(int index, const std::string& name) const {
    for (const std::string& e : launched.at(index).env) {
      if (absl::StartsWith(e, name + "=")) return e.substr(name.size() + 1);
    }
    return "<unset>";
  }

  std::vector<ProcessOptions> launched;
  std::map<int, int> exit_codes;
  std::set<int> stubborn;
  std::vector<std::pair<int, int>> signals;
  int fail_launch_number = -1;
};

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

std::string EventJson(const v1::TrainerEvent& event) {
  std::string json;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(event, &json).ok());
  return json + "\n";
}

std::string MetricLine(const std::string& name, double value, int64_t step) {
  v1::TrainerEvent event;
  event.mutable_metric()->set_name(name);
  event.mutable_metric()->set_value(value);
  event.mutable_metric()->set_step(step);
  return EventJson(event);
}

class WorkerAgentTest : public ::testing::Test {
 protected:
  WorkerAgentTest() {
    work_dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    WorkerAgentOptions options;
    options.worker_id = "node-a";
    options.inventory.set_hostname("node-a");
    options.inventory.set_cpu_slots(2);
    options.launch.work_dir = work_dir_;
    options.launch.trainer_path = "/bin/trainer";
    options.launch.data_root = "/data";
    options.launch.base_env = {"PATH=/bin"};
    // The real serializer lives in common/; any faithful one shows the worker writes the file.
    options.spec_to_yaml = [](const v1::TrialSpec& spec) -> absl::StatusOr<std::string> {
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(spec, &json);
      return json;
    };
    options.kill_grace = absl::Seconds(10);
    options.metrics_flush_interval = absl::Milliseconds(250);
    agent_ = std::make_unique<WorkerAgent>(options, &client_, &launcher_);
  }

  // Queues a launch of trial exp-1-0 with two local CPU ranks (0 and 1) for the next heartbeat.
  void QueueLaunch(int attempt = 1) {
    *client_.next_actions.emplace_back().mutable_launch() = TwoRankLaunch(attempt);
  }

  static v1::LaunchTrial TwoRankLaunch(int attempt) {
    v1::LaunchTrial result;
    v1::LaunchTrial* launch = &result;
    launch->set_trial_id("exp-1-0");
    launch->set_attempt(attempt);
    launch->set_world_size(2);
    launch->mutable_spec()->mutable_data()->set_path("tiny.txt");
    launch->mutable_placement()->set_device_kind(v1::DEVICE_KIND_CPU);
    launch->mutable_placement()->set_master_addr("node-a");
    launch->mutable_placement()->set_master_port(29500);
    auto* slice = launch->mutable_placement()->add_slices();
    slice->set_worker_id("node-a");
    slice->add_devices(0);
    slice->add_devices(1);
    return result;
  }

  // Heartbeats (at t0) and launches the gang.
  void Launch() {
    QueueLaunch();
    agent_->Tick(t0_);
    ASSERT_EQ(launcher_.launched.size(), 2u);
  }

  std::string AttemptDir(int attempt = 1) {
    return absl::StrCat(work_dir_, "/exp-1-0/attempt-", attempt);
  }
  std::string Events() { return AttemptDir() + "/events.jsonl"; }

  std::string work_dir_;
  absl::Time t0_ = absl::FromUnixSeconds(1700000000);
  FakeCoordinatorClient client_;
  FakeLauncher launcher_;
  std::unique_ptr<WorkerAgent> agent_;
};

TEST_F(WorkerAgentTest, RegistersInventoryAndFollowsTheCoordinatorsInterval) {
  client_.interval_seconds = 3;
  agent_->Tick(t0_);
  ASSERT_EQ(client_.heartbeats.size(), 1u);
  EXPECT_EQ(client_.heartbeats[0].worker_id(), "node-a");
  EXPECT_EQ(client_.heartbeats[0].inventory().cpu_slots(), 2);
  agent_->Tick(t0_ + absl::Milliseconds(2900));
  EXPECT_EQ(client_.heartbeats.size(), 1u);
  agent_->Tick(t0_ + absl::Seconds(3));
  EXPECT_EQ(client_.heartbeats.size(), 2u);
}

TEST_F(WorkerAgentTest, AWakeUpHeartbeatsAtTheNextTickAndFetchesTheLaunch) {
  client_.interval_seconds = 3;
  agent_->Tick(t0_);
  ASSERT_EQ(client_.heartbeats.size(), 1u);
  // The coordinator placed a trial here and woke the agent (ActionStream): it does not wait the
  // 3 s interval for the launch.
  QueueLaunch();
  agent_->Wake();
  agent_->Tick(t0_ + absl::Milliseconds(100));
  ASSERT_EQ(client_.heartbeats.size(), 2u);
  EXPECT_EQ(launcher_.launched.size(), 2u);
  // One wake-up, one heartbeat: the next tick is back on the interval.
  agent_->Tick(t0_ + absl::Milliseconds(200));
  EXPECT_EQ(client_.heartbeats.size(), 2u);
}

TEST_F(WorkerAgentTest, LaunchesEachRankAndWritesTheResolvedSpec) {
  Launch();
  EXPECT_EQ(launcher_.Env(1, "RANK"), "1");
  EXPECT_EQ(launcher_.Env(0, "GAUNTLET_EVENTS_FILE"), Events());
  EXPECT_EQ(launcher_.launched[1].working_dir, AttemptDir() + "/rank-1");
  const std::string spec = Read(work_dir_ + "/exp-1-0/trial.yaml");
  EXPECT_NE(spec.find("/data/tiny.txt"), std::string::npos) << spec;
  // The trainer's run_dir is the trial's checkpoint directory, owned by this attempt.
  EXPECT_NE(spec.find(work_dir_ + "/checkpoints/exp-1-0\""), std::string::npos) << spec;
  EXPECT_EQ(Read(work_dir_ + "/checkpoints/exp-1-0/fence"), "1\n");

  // The coordinator repeats the launch until it sees the gang: nothing new starts.
  QueueLaunch();
  agent_->Tick(t0_ + absl::Seconds(2));
  EXPECT_EQ(launcher_.launched.size(), 2u);
  const v1::HeartbeatRequest& hb = client_.heartbeats.back();
  ASSERT_EQ(hb.processes_size(), 1);
  EXPECT_EQ(hb.processes(0).state(), v1::PROCESS_STATE_RUNNING);
  EXPECT_EQ(hb.processes(0).ranks_size(), 2);
}

TEST_F(WorkerAgentTest, ForwardsMetricPointsPromptlyAndOnce) {
  Launch();
  Append(Events(), MetricLine("train_loss", 3.5, 10) + MetricLine("train_loss", 3.1, 20));
  agent_->Tick(t0_ + absl::Milliseconds(100));
  ASSERT_EQ(client_.metrics.size(), 1u);
  ASSERT_EQ(client_.metrics[0].points_size(), 2);
  EXPECT_EQ(client_.metrics[0].points(1).trial_id(), "exp-1-0");
  EXPECT_EQ(client_.metrics[0].points(1).step(), 20);
  EXPECT_EQ(client_.metrics[0].attempt(), 1);
  // Batching: a point read 100 ms later waits for the flush interval, but not much longer.
  Append(Events(), MetricLine("train_loss", 2.9, 30));
  agent_->Tick(t0_ + absl::Milliseconds(200));
  EXPECT_EQ(client_.metrics.size(), 1u);
  agent_->Tick(t0_ + absl::Milliseconds(350));
  ASSERT_EQ(client_.metrics.size(), 2u);
  EXPECT_EQ(client_.metrics[1].points_size(), 1);
  agent_->Tick(t0_ + absl::Seconds(1));
  EXPECT_EQ(client_.metrics.size(), 2u);
}

TEST_F(WorkerAgentTest, ForwardsLogLinesPerRank) {
  Launch();
  Append(AttemptDir() + "/rank-1/stdout.log", "step 10/100 | loss 3.5\n");
  Append(AttemptDir() + "/rank-1/stderr.log", "warning: slow\n");
  agent_->Tick(t0_ + absl::Milliseconds(100));
  EXPECT_EQ(client_.AllLogText(1), "step 10/100 | loss 3.5\nwarning: slow\n");
  EXPECT_EQ(client_.logs.back().chunks(0).attempt(), 1);
  EXPECT_EQ(client_.AllLogText(0), "");
}

TEST_F(WorkerAgentTest, FailingRankStopsTheGangAndReportsTheTrainerReason) {
  Launch();
  launcher_.stubborn.insert(1001);
  v1::TrainerEvent error;
  error.mutable_error()->set_exit_code(v1::TRAINER_EXIT_NON_FINITE);
  error.mutable_error()->set_reason("loss is NaN at step 40");
  Append(Events(), MetricLine("train_loss", 3.0, 30) + EventJson(error));
  launcher_.exit_codes[1000] = 4;
  agent_->Tick(t0_ + absl::Seconds(1));
  // Rank 1 got SIGTERM and ignores it: the gang is not over yet.
  EXPECT_EQ(launcher_.signals, (std::vector<std::pair<int, int>>{{1001, SIGTERM}}));
  EXPECT_TRUE(client_.exits.empty());
  agent_->Tick(t0_ + absl::Seconds(10));
  EXPECT_EQ(launcher_.signals.size(), 1u);
  agent_->Tick(t0_ + absl::Seconds(11));  // grace over
  ASSERT_EQ(launcher_.signals.size(), 2u);
  EXPECT_EQ(launcher_.signals[1], std::make_pair(1001, SIGKILL));
  agent_->Tick(t0_ + absl::Seconds(11.1));
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 4);
  EXPECT_EQ(client_.exits[0].reason(), "loss is NaN at step 40");
  // The last metric point went out before the exit.
  ASSERT_FALSE(client_.metrics.empty());
  EXPECT_EQ(client_.metrics.back().points(0).step(), 30);
}

TEST_F(WorkerAgentTest, ReasonFallsBackToTheLastStderrLineAndSummaryIsSent) {
  Launch();
  Append(AttemptDir() + "/rank-0/stderr.log", "loading data\nerror: data.path not found\n\n");
  launcher_.exit_codes[1000] = 3;
  agent_->Tick(t0_ + absl::Seconds(1));  // rank 1 exits on SIGTERM
  agent_->Tick(t0_ + absl::Seconds(1.5));
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 3);
  EXPECT_EQ(client_.exits[0].reason(), "error: data.path not found");
}

TEST_F(WorkerAgentTest, SuccessfulGangReportsItsSummary) {
  Launch();
  v1::TrainerEvent summary;
  summary.mutable_summary()->set_arch("standard");
  summary.mutable_summary()->set_steps(100);
  Append(Events(), EventJson(summary));
  launcher_.exit_codes[1000] = 0;
  agent_->Tick(t0_ + absl::Seconds(1));
  EXPECT_TRUE(client_.exits.empty());  // rank 1 still running: an exit-0 rank stops no one
  EXPECT_TRUE(launcher_.signals.empty());
  launcher_.exit_codes[1001] = 0;
  agent_->Tick(t0_ + absl::Seconds(1.5));
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 0);
  EXPECT_EQ(client_.exits[0].reason(), "");
  EXPECT_EQ(client_.exits[0].summary().arch(), "standard");
  EXPECT_EQ(client_.exits[0].summary().steps(), 100);
  // Reported EXITED in the next heartbeat, then forgotten.
  agent_->Tick(t0_ + absl::Seconds(2));
  ASSERT_EQ(client_.heartbeats.back().processes_size(), 1);
  EXPECT_EQ(client_.heartbeats.back().processes(0).state(), v1::PROCESS_STATE_EXITED);
  agent_->Tick(t0_ + absl::Seconds(4));
  EXPECT_EQ(client_.heartbeats.back().processes_size(), 0);
}

TEST_F(WorkerAgentTest, StopActionTerminatesTheGang) {
  Launch();
  v1::StopTrial* stop = client_.next_actions.emplace_back().mutable_stop();
  stop->set_trial_id("exp-1-0");
  stop->set_attempt(1);
  stop->set_reason("experiment canceled");
  agent_->Tick(t0_ + absl::Seconds(2));
  EXPECT_EQ(launcher_.signals,
            (std::vector<std::pair<int, int>>{{1000, SIGTERM}, {1001, SIGTERM}}));
  agent_->Tick(t0_ + absl::Seconds(2.1));
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 128 + SIGTERM);
  EXPECT_EQ(client_.exits[0].reason(), "stopped: experiment canceled");
}

TEST_F(WorkerAgentTest, LaunchFailureIsReportedAsAnExit) {
  launcher_.fail_launch_number = 1;  // rank 0 starts, rank 1 cannot
  QueueLaunch();
  agent_->Tick(t0_);
  EXPECT_EQ(launcher_.signals, (std::vector<std::pair<int, int>>{{1000, SIGTERM}}));
  agent_->Tick(t0_ + absl::Milliseconds(100));
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 1);
  EXPECT_TRUE(client_.exits[0].launch_failed());
  EXPECT_NE(client_.exits[0].reason().find("launch failed: cannot start /bin/trainer"),
            std::string::npos)
      << client_.exits[0].reason();
}

TEST_F(WorkerAgentTest, SurvivesACoordinatorOutageAndReReportsEverything) {
  Launch();
  client_.down = true;
  Append(Events(), MetricLine("val_loss", 2.5, 100));
  launcher_.exit_codes[1000] = 0;
  launcher_.exit_codes[1001] = 0;
  agent_->Tick(t0_ + absl::Seconds(2));  // heartbeat fails
  EXPECT_FALSE(agent_->connected());
  // Backoff doubles: 0.5 s, 1 s, 2 s ... and nothing else is attempted while down.
  const absl::Time first_retry = agent_->next_heartbeat();
  EXPECT_EQ(first_retry, t0_ + absl::Seconds(2.5));
  const int calls = client_.calls;
  agent_->Tick(t0_ + absl::Seconds(2.4));
  EXPECT_EQ(client_.calls, calls);
  agent_->Tick(first_retry);
  EXPECT_EQ(agent_->next_heartbeat(), first_retry + absl::Seconds(1));
  // The coordinator comes back (restarted: it knows nothing).
  client_.down = false;
  agent_->Tick(agent_->next_heartbeat());
  EXPECT_TRUE(agent_->connected());
  const v1::HeartbeatRequest& hb = client_.heartbeats.back();
  ASSERT_EQ(hb.processes_size(), 1);
  EXPECT_EQ(hb.processes(0).trial_id(), "exp-1-0");
  EXPECT_EQ(hb.processes(0).state(), v1::PROCESS_STATE_EXITED);
  ASSERT_EQ(client_.metrics.size(), 1u);
  EXPECT_EQ(client_.metrics[0].points(0).name(), "val_loss");
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 0);
}

TEST_F(WorkerAgentTest, NewAttemptSupersedesTheOldOne) {
  Launch();
  QueueLaunch(/*attempt=*/2);
  agent_->Tick(t0_ + absl::Seconds(2));
  EXPECT_EQ(launcher_.signals,
            (std::vector<std::pair<int, int>>{{1000, SIGTERM}, {1001, SIGTERM}}));
  ASSERT_EQ(launcher_.launched.size(), 4u);
  EXPECT_EQ(launcher_.launched[2].working_dir, AttemptDir(2) + "/rank-0");
  // Same checkpoint dir for every attempt (the trainer resumes from it), now owned by attempt 2.
  const std::string spec2 = Read(work_dir_ + "/exp-1-0/trial.yaml");
  EXPECT_NE(spec2.find(work_dir_ + "/checkpoints/exp-1-0\""), std::string::npos) << spec2;
  EXPECT_EQ(Read(work_dir_ + "/checkpoints/exp-1-0/fence"), "2\n");

  // A late launch of attempt 1 (a delayed reply) cannot take the directory back.
  QueueLaunch(/*attempt=*/1);
  client_.next_actions.clear();
  v1::LaunchTrial stale = TwoRankLaunch(1);
  *client_.next_actions.emplace_back().mutable_launch() = stale;
  agent_->Tick(t0_ + absl::Seconds(4));
  EXPECT_EQ(launcher_.launched.size(), 4u);
  EXPECT_EQ(Read(work_dir_ + "/checkpoints/exp-1-0/fence"), "2\n");
}

TEST_F(WorkerAgentTest, ReconnectBackoffStaysBelowTheLease) {
  client_.lease_seconds = 4;
  agent_->Tick(t0_);  // learns the 4 s lease
  client_.down = true;
  absl::Time t = t0_ + absl::Seconds(2);
  for (int i = 0; i < 10; ++i) {
    agent_->Tick(t);
    EXPECT_LE(agent_->next_heartbeat() - t, absl::Seconds(1)) << "retry " << i;
    t = agent_->next_heartbeat();
  }
}

TEST_F(WorkerAgentTest, RefusedCredentialsAreLoudAndFatalAfterNTries) {
  client_.bad_token = true;
  absl::Time t = t0_;
  for (int i = 0; i < 4; ++i) {
    agent_->Tick(t);
    EXPECT_TRUE(agent_->fatal().ok());
    t = agent_->next_heartbeat();
  }
  agent_->Tick(t);  // the 5th refusal
  EXPECT_EQ(agent_->fatal().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(agent_->fatal().message().find("5 times"), std::string::npos);
}

TEST_F(WorkerAgentTest, TheExitWaitsForTheGangsLastLogLines) {
  Launch();
  Append(AttemptDir() + "/rank-0/stdout.log", "final val loss 1.9\n");
  launcher_.exit_codes[1000] = 0;
  launcher_.exit_codes[1001] = 0;
  client_.down = true;  // logs cannot go out yet
  agent_->Tick(t0_ + absl::Seconds(2));
  EXPECT_TRUE(client_.exits.empty());
  client_.down = false;
  agent_->Tick(agent_->next_heartbeat());
  ASSERT_EQ(client_.exits.size(), 1u);
  // Every log line was acknowledged before the exit was sent.
  EXPECT_NE(client_.AllLogText(0).find("final val loss 1.9"), std::string::npos);
}

TEST_F(WorkerAgentTest, RunDeregistersAfterItsGangsExited) {
  Launch();
  FakeClock clock(t0_);
  int ticks = 0;
  agent_->Run(&clock, absl::Milliseconds(100), [&] { return ++ticks > 3; }, absl::Seconds(30));
  ASSERT_EQ(client_.exits.size(), 1u);
  EXPECT_EQ(client_.exits[0].exit_code(), 128 + SIGTERM);
  ASSERT_EQ(client_.deregistered.size(), 1u);
  EXPECT_EQ(client_.deregistered[0].worker_id(), "node-a");
}

TEST_F(WorkerAgentTest, StopAllTerminatesEverythingForShutdown) {
  Launch();
  agent_->StopAll(t0_ + absl::Seconds(1), "worker shutting down");
  EXPECT_EQ(launcher_.signals.size(), 2u);
  EXPECT_FALSE(agent_->AllExited());
  agent_->Tick(t0_ + absl::Seconds(1.1));
  EXPECT_TRUE(agent_->AllExited());
  EXPECT_EQ(client_.exits.at(0).reason(), "stopped: worker shutting down");
}

}  // namespace
}  // namespace gauntlet::worker
