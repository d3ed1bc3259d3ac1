#include "server/controller.h"

#include <atomic>
#include <cstdlib>
#include <functional>
#include <thread>
#include <limits>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "common/testing/fake_clock.h"
#include "server/sqlite_store.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;

// The real SQLite store with a switch that makes trial writes fail, to show that a transition
// the store did not accept is never acted on.
class FlakyStore final : public Store {
 public:
  explicit FlakyStore(std::unique_ptr<Store> real) : real_(std::move(real)) {}
  bool fail_trial_writes = false;
  // Runs inside SaveMetrics / CreateExperiment before the write (to hold a write in flight).
  std::function<void()> before_save_metrics;
  std::function<void()> before_create;
  bool fail_creates = false;

  absl::Status CreateExperiment(const v1::Experiment& e) override {
    if (before_create) before_create();
    if (fail_creates) return absl::UnavailableError("disk full");
    return real_->CreateExperiment(e);
  }
  absl::Status SaveTrial(const v1::Trial& t, const v1::TrialTransition* tr) override {
    if (fail_trial_writes) return absl::UnavailableError("disk full");
    return real_->SaveTrial(t, tr);
  }
  absl::Status SaveTrials(const std::vector<const v1::Trial*>& t) override {
    if (fail_trial_writes) return absl::UnavailableError("disk full");
    return real_->SaveTrials(t);
  }
  absl::Status SaveMetrics(const std::vector<v1::MetricPoint>& p,
                           const std::vector<const v1::Trial*>& t) override {
    if (before_save_metrics) before_save_metrics();
    return real_->SaveMetrics(p, t);
  }
  absl::Status SaveSummary(const std::string& id, const v1::TrainerSummary& summary) override {
    return real_->SaveSummary(id, summary);
  }
  absl::Status AppendLogs(const std::vector<v1::LogChunk>& c) override {
    return real_->AppendLogs(c);
  }
  absl::Status DownsampleMetrics(const std::string& id, int max_points) override {
    return real_->DownsampleMetrics(id, max_points);
  }
  absl::StatusOr<std::vector<v1::Experiment>> LoadExperiments() override {
    return real_->LoadExperiments();
  }
  absl::StatusOr<std::map<std::string, v1::TrainerSummary>> LoadSummaries() override {
    return real_->LoadSummaries();
  }
  absl::StatusOr<std::vector<v1::MetricPoint>> LoadMetrics(const std::string& id,
                                                           const std::string& name) override {
    return real_->LoadMetrics(id, name);
  }
  absl::StatusOr<std::vector<StoredLogChunk>> ReadLogs(const std::string& id, int rank,
                                                       int64_t after) override {
    return real_->ReadLogs(id, rank, after);
  }

 private:
  std::unique_ptr<Store> real_;
};

// Experiments the fake compiler knows, keyed by their YAML text.
struct SpecBook {
  std::map<std::string, CompiledExperiment> specs;

  // `name` with variants x seeds, each trial needing `gpus` devices on up to `max_nodes`.
  std::string Add(const std::string& name, std::vector<std::string> variants,
                  std::vector<int64_t> seeds, int gpus = 1, int max_nodes = 1,
                  int max_restarts = 1, int priority = 0) {
    CompiledExperiment c;
    c.spec.set_name(name);
    c.spec.set_max_restarts(max_restarts);
    c.spec.set_priority(priority);
    for (const std::string& v : variants) {
      c.spec.add_variants()->set_name(v);
      for (int64_t seed : seeds) {
        v1::Trial& t = c.trials.emplace_back();
        t.set_variant(v);
        t.set_seed(seed);
        t.mutable_spec()->set_seed(seed);
        t.mutable_spec()->mutable_model()->set_arch(v);
        t.mutable_spec()->mutable_resources()->set_gpus_per_trial(gpus);
        t.mutable_spec()->mutable_resources()->set_max_nodes(max_nodes);
      }
    }
    c.spec.set_baseline(variants.front());
    const std::string yaml = "name: " + name;
    specs[yaml] = c;
    return yaml;
  }

  SpecCompiler Compiler() {
    return [this](std::string_view yaml) -> absl::StatusOr<CompiledExperiment> {
      auto it = specs.find(std::string(yaml));
      if (it == specs.end()) {
        return absl::InvalidArgumentError("line 1, column 7: name: unknown test spec");
      }
      return it->second;
    };
  }
};

std::string TempDb() {
  static int n = 0;
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(dir ? dir : "/tmp", "/controller", ++n, ".db");
  std::remove(path.c_str());
  return path;
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = TempDb();
    Start();
  }

  // (Re)creates the controller over the same database file, as a restarted process would.
  void Start() {
    controller_.reset();
    auto real = SqliteStore::Open(db_path_);
    ASSERT_TRUE(real.ok()) << real.status();
    store_ = std::make_unique<FlakyStore>(*std::move(real));
    metrics_ = std::make_unique<CoordinatorMetrics>("test");
    controller_ = std::make_unique<Controller>(store_.get(), metrics_.get(), &clock_,
                                               book_.Compiler(), ControllerOptions{});
    ASSERT_TRUE(controller_->Recover().ok());
  }

  v1::Experiment Submit(const std::string& yaml) {
    v1::SubmitExperimentRequest request;
    request.set_spec_yaml(yaml);
    auto experiment = controller_->Submit(request);
    EXPECT_TRUE(experiment.ok()) << experiment.status();
    return experiment.ok() ? *experiment : v1::Experiment();
  }

  v1::Experiment Get(const std::string& id) {
    v1::GetExperimentRequest request;
    request.set_experiment(id);
    request.set_include_transitions(true);
    auto experiment = controller_->Get(request);
    EXPECT_TRUE(experiment.ok()) << experiment.status();
    return experiment.ok() ? *experiment : v1::Experiment();
  }

  v1::Trial GetTrial(const std::string& trial_id) {
    const std::string experiment_id = trial_id.substr(0, trial_id.rfind('-'));
    const v1::Experiment experiment = Get(experiment_id);
    for (const v1::Trial& t : experiment.trials()) {
      if (t.id() == trial_id) return t;
    }
    ADD_FAILURE() << "no trial " << trial_id;
    return {};
  }

  // A heartbeat from `worker` with `gpus` GPUs reporting `processes` (trial id -> state).
  v1::HeartbeatResponse Beat(const std::string& worker, int gpus,
                             std::vector<v1::ProcessStatus> processes = {}) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker);
    request.mutable_inventory()->set_address(worker + ".local");
    request.mutable_inventory()->set_rendezvous_port_base(29500);
    for (int i = 0; i < gpus; ++i) request.mutable_inventory()->add_gpus()->set_index(i);
    for (auto& p : processes) *request.add_processes() = p;
    auto response = controller_->Heartbeat(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::HeartbeatResponse();
  }

  static v1::ProcessStatus Process(const std::string& trial, int attempt, v1::ProcessState state,
                                   int exit_code = 0) {
    v1::ProcessStatus p;
    p.set_trial_id(trial);
    p.set_attempt(attempt);
    p.set_state(state);
    p.set_exit_code(exit_code);
    return p;
  }

  absl::Status Exit(const std::string& worker, const std::string& trial, int attempt, int code,
                    const v1::TrainerSummary* summary = nullptr, bool launch_failed = false) {
    v1::ReportTrialExitRequest request;
    request.set_worker_id(worker);
    request.set_trial_id(trial);
    request.set_attempt(attempt);
    request.set_exit_code(code);
    if (summary != nullptr) *request.mutable_summary() = *summary;
    request.set_launch_failed(launch_failed);
    return controller_->ReportTrialExit(request);
  }

  absl::Status Metric(const std::string& trial, int attempt, const std::string& name, double value,
                      int64_t step, double train_seconds) {
    v1::ReportMetricsRequest request;
    request.set_worker_id("w1");
    request.set_attempt(attempt);
    v1::MetricPoint* p = request.add_points();
    p->set_trial_id(trial);
    p->set_name(name);
    p->set_value(value);
    p->set_step(step);
    p->set_tokens(step * 100);
    p->set_train_seconds(train_seconds);
    p->set_unix_time(1700000000 + step);
    return controller_->ReportMetrics(request);
  }

  // Value of the series of `family` carrying all of `labels`, or NaN when there is none.
  double Scrape(const std::string& family, std::map<std::string, std::string> labels) {
    for (const prometheus::MetricFamily& f : metrics_->registry()->Collect()) {
      if (f.name != family) continue;
      for (const prometheus::ClientMetric& m : f.metric) {
        size_t matched = 0;
        for (const auto& l : m.label) {
          auto it = labels.find(l.name);
          if (it != labels.end() && it->second == l.value) ++matched;
        }
        if (matched != labels.size()) continue;
        if (f.type == prometheus::MetricType::Counter) return m.counter.value;
        if (f.type == prometheus::MetricType::Histogram) return m.histogram.sample_count;
        return m.gauge.value;
      }
    }
    return std::nan("");
  }
  double Scrape(const std::string& family, const std::string& label, const std::string& value) {
    if (label.empty()) return Scrape(family, std::map<std::string, std::string>{});
    return Scrape(family, std::map<std::string, std::string>{{label, value}});
  }

  void Tick() { controller_->Tick(clock_.Now()); }

  FakeClock clock_;
  SpecBook book_;
  std::string db_path_;
  std::unique_ptr<FlakyStore> store_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, SubmitExpandsPersistsAndRejectsDuplicates) {
  const std::string yaml = book_.Add("cmp", {"std", "wk"}, {1, 2});
  v1::Experiment e = Submit(yaml);
  EXPECT_EQ(e.id(), "exp-1");
  EXPECT_EQ(e.state(), v1::EXPERIMENT_STATE_PENDING);
  ASSERT_EQ(e.trials_size(), 4);
  EXPECT_EQ(e.trials(3).id(), "exp-1-3");
  EXPECT_EQ(e.trials(3).variant(), "wk");
  EXPECT_EQ(e.trials(3).seed(), 2);
  EXPECT_EQ(e.trials(3).attempt(), 1);
  EXPECT_EQ(e.trial_counts().at("pending"), 4);
  EXPECT_EQ(Get("cmp").id(), "exp-1");  // by name

  v1::SubmitExperimentRequest again;
  again.set_spec_yaml(yaml);
  EXPECT_EQ(controller_->Submit(again).status().code(), absl::StatusCode::kAlreadyExists);
  again.set_spec_yaml("name: [broken");
  absl::Status bad = controller_->Submit(again).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("line 1, column 7"));
  again.clear_spec_yaml();
  EXPECT_THAT(controller_->Submit(again).status().message(), HasSubstr("spec_yaml"));

  v1::SubmitExperimentRequest dry;
  dry.set_spec_yaml(book_.Add("dry", {"std"}, {1}));
  dry.set_dry_run(true);
  ASSERT_EQ(controller_->Submit(dry)->trials_size(), 1);
  v1::GetExperimentRequest get;
  get.set_experiment("dry");
  EXPECT_EQ(controller_->Get(get).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, PendingTrialSaysWhyItWaits) {
  Submit(book_.Add("a", {"std"}, {1}, /*gpus=*/2));
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").status_message(), "no workers registered");
  Beat("w1", 1);
  Tick();
  EXPECT_THAT(GetTrial("exp-1-0").status_message(), HasSubstr("waiting for 2 free gpu"));
  EXPECT_EQ(Scrape("gauntlet_queue_depth", "", ""), 1);
}

// "train" and "inf" (an inference variant loading train's checkpoint) x `seeds`.
std::string AddInferenceFromTraining(SpecBook& book, const std::string& name,
                                     std::vector<int64_t> seeds) {
  const std::string yaml = book.Add(name, {"train", "inf"}, seeds);
  for (v1::Trial& t : book.specs[yaml].trials) {
    if (t.variant() != "inf") continue;
    t.mutable_spec()->set_kind("inference");
    t.mutable_spec()->mutable_inference()->set_checkpoint_variant("train");
  }
  return yaml;
}

TEST_F(ControllerTest, InferenceTrialWaitsForTheTrialWhoseCheckpointItLoads) {
  Submit(AddInferenceFromTraining(book_, "inf", {1, 2}));
  // Trials: exp-1-0 train seed 1, exp-1-1 train seed 2, exp-1-2 inf seed 1, exp-1-3 inf seed 2.
  EXPECT_EQ(GetTrial("exp-1-2").spec().inference().checkpoint_path(), "exp-1-0");
  EXPECT_EQ(GetTrial("exp-1-3").spec().inference().checkpoint_path(), "exp-1-1");
  Beat("w1", 4);
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(GetTrial("exp-1-1").state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(GetTrial("exp-1-2").state(), v1::TRIAL_STATE_PENDING);  // free GPUs, but it waits
  EXPECT_THAT(GetTrial("exp-1-2").status_message(), HasSubstr("waiting for trial exp-1-0"));

  // Seed 1's training completes: its inference trial is placed; seed 2's fails: so does its
  // inference trial, without ever running.
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 0).ok());
  ASSERT_TRUE(Exit("w1", "exp-1-1", 1, v1::TRAINER_EXIT_BAD_DATA).ok());
  Tick();
  EXPECT_EQ(GetTrial("exp-1-2").state(), v1::TRIAL_STATE_SCHEDULED);
  const v1::Trial orphan = GetTrial("exp-1-3");
  EXPECT_EQ(orphan.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_THAT(orphan.transitions(orphan.transitions_size() - 1).reason(),
              HasSubstr("trial exp-1-1, whose checkpoint it loads, ended failed"));

  // Its result reaches the labelled inference gauges.
  v1::TrainerSummary summary;
  v1::DecodeThroughput* decode = summary.mutable_inference()->add_decode();
  decode->set_batch(32);
  decode->set_tokens_per_second(1234);
  decode->set_seconds_per_step(0.004);
  decode->set_bandwidth_bound_seconds(0.001);
  summary.mutable_inference()->set_kv_cache_bytes_per_token(2048);
  ASSERT_TRUE(Exit("w1", "exp-1-2", 1, 0, &summary).ok());
  EXPECT_EQ(GetTrial("exp-1-2").state(), v1::TRIAL_STATE_COMPLETED);
  EXPECT_EQ(Scrape("gauntlet_trial_inference_decode_tokens_per_second",
                   {{"trial", "exp-1-2"}, {"batch", "32"}}),
            1234);
  EXPECT_EQ(Scrape("gauntlet_trial_inference_decode_bound_ratio", {{"trial", "exp-1-2"}}), 4);
  EXPECT_EQ(Scrape("gauntlet_trial_inference_kv_cache_bytes_per_token", "trial", "exp-1-2"),
            2048);
}

TEST_F(ControllerTest, SubmitRejectsGangLargerThanCluster) {
  Beat("w1", 2);
  v1::SubmitExperimentRequest request;
  request.set_spec_yaml(book_.Add("big", {"std"}, {1}, /*gpus=*/5, /*max_nodes=*/2));
  absl::Status status = controller_->Submit(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("resources.gpus_per_trial"));
  EXPECT_THAT(status.message(), HasSubstr("needs 5 gpu devices but can get at most 4"));
}

TEST_F(ControllerTest, LifecycleToCompletedWithMetricsAndCompare) {
  Submit(book_.Add("life", {"std", "wk"}, {1}));
  Beat("w1", 2);
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(GetTrial("exp-1-1").state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(Scrape("gauntlet_scheduling_latency_seconds", "", ""), 2);

  v1::HeartbeatResponse reply = Beat("w1", 2);
  ASSERT_EQ(reply.actions_size(), 2);
  EXPECT_EQ(reply.lease_seconds(), 15);
  const v1::LaunchTrial& launch = reply.actions(0).launch();
  EXPECT_EQ(launch.trial_id(), "exp-1-0");
  EXPECT_EQ(launch.attempt(), 1);
  EXPECT_EQ(launch.world_size(), 1);
  EXPECT_EQ(launch.slice_index(), 0);
  EXPECT_EQ(launch.placement().master_addr(), "w1.local");
  EXPECT_EQ(launch.placement().master_port(), 29500);
  EXPECT_EQ(reply.actions(1).launch().placement().master_port(), 29501);
  EXPECT_EQ(reply.actions(1).launch().placement().slices(0).devices(0), 1);

  // Reported but not running yet: no more launches, still SCHEDULED.
  reply = Beat("w1", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_STARTING),
                         Process("exp-1-1", 1, v1::PROCESS_STATE_RUNNING)});
  EXPECT_EQ(reply.actions_size(), 0);
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(GetTrial("exp-1-1").state(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(Get("exp-1").state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_EQ(Scrape("gauntlet_devices", {{"kind", "gpu"}, {"state", "busy"}}), 2);

  ASSERT_TRUE(Metric("exp-1-1", 1, "val_loss", 3.0, 10, 5.0).ok());
  ASSERT_TRUE(Metric("exp-1-1", 1, "val_loss", 2.0, 20, 10.0).ok());
  EXPECT_EQ(Scrape("gauntlet_trial_val_loss", "trial", "exp-1-1"), 2.0);
  EXPECT_EQ(Scrape("gauntlet_trial_step", "trial", "exp-1-1"), 20);
  EXPECT_EQ(Scrape("gauntlet_metric_points_total", "", ""), 2);
  EXPECT_EQ(GetTrial("exp-1-1").latest_metrics().at("val_loss"), 2.0);
  EXPECT_EQ(GetTrial("exp-1-1").latest_step(), 20);

  v1::TrainerSummary summary;
  summary.set_params(1234);
  summary.set_final_val_loss(1.9);
  summary.set_tokens_per_second(500);
  summary.set_train_seconds(10);
  ASSERT_TRUE(Exit("w1", "exp-1-1", 1, 0, &summary).ok());
  v1::Trial done = GetTrial("exp-1-1");
  EXPECT_EQ(done.state(), v1::TRIAL_STATE_COMPLETED);
  EXPECT_GT(done.finished_unix_time(), 0);
  // Frozen at the last value after the trial ended.
  EXPECT_EQ(Scrape("gauntlet_trial_val_loss", "trial", "exp-1-1"), 2.0);

  // exp-1-0 exits before any heartbeat said RUNNING: it still passes through RUNNING.
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 0).ok());
  v1::Trial fast = GetTrial("exp-1-0");
  EXPECT_EQ(fast.state(), v1::TRIAL_STATE_COMPLETED);
  ASSERT_EQ(fast.transitions_size(), 3);
  EXPECT_EQ(fast.transitions(1).to(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(Get("exp-1").state(), v1::EXPERIMENT_STATE_COMPLETED);

  v1::CompareExperimentRequest compare;
  compare.set_experiment("life");
  auto table = controller_->Compare(compare);
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->variants_size(), 2);
  EXPECT_EQ(table->variants(1).params(), 1234);
  EXPECT_DOUBLE_EQ(table->variants(1).val_loss_mean(), 1.9);
  ASSERT_EQ(table->curves_size(), 1);
  EXPECT_EQ(table->curves(0).val_loss_size(), 2);
}

TEST_F(ControllerTest, WorkerLossRestartsThenFails) {
  Submit(book_.Add("lost", {"std"}, {1}, 1, 1, /*max_restarts=*/1));
  Beat("w1", 1);
  Tick();
  Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);

  clock_.Advance(absl::Seconds(14));
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);  // lease not yet missed
  clock_.Advance(absl::Seconds(2));
  Beat("w2", 1);
  Tick();  // w1 lost: back to PENDING with attempt 2, then placed on w2 in the same tick.
  v1::Trial t = GetTrial("exp-1-0");
  EXPECT_EQ(t.attempt(), 2);
  EXPECT_EQ(t.state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(t.placement().slices(0).worker_id(), "w2");
  EXPECT_THAT(t.transitions(2).reason(), HasSubstr("worker w1 lost"));
  EXPECT_EQ(Scrape("gauntlet_trial_restarts_total", "", ""), 1);
  EXPECT_EQ(Scrape("gauntlet_workers", "state", "lost"), 1);

  // The old gang comes back from the dead: it is told to stop, and its metrics are dropped.
  v1::HeartbeatResponse reply = Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_EQ(reply.actions_size(), 1);
  EXPECT_EQ(reply.actions(0).stop().attempt(), 1);
  ASSERT_TRUE(Metric("exp-1-0", 1, "train_loss", 9.0, 5, 1).ok());
  EXPECT_EQ(GetTrial("exp-1-0").latest_metrics().count("train_loss"), 0u);

  Beat("w2", 1, {Process("exp-1-0", 2, v1::PROCESS_STATE_RUNNING)});
  clock_.Advance(absl::Seconds(16));
  Beat("w1", 1);
  Tick();
  t = GetTrial("exp-1-0");
  EXPECT_EQ(t.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_THAT(t.status_message(), HasSubstr("no restarts left"));
}

TEST_F(ControllerTest, GangFailureRetriesOnlyRetryableCodes) {
  Submit(book_.Add("codes", {"a", "b"}, {1}, 1, 1, 3));
  Beat("w1", 2);
  Tick();
  Beat("w1", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING),
                 Process("exp-1-1", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 6).ok());  // distributed failure: retried
  ASSERT_TRUE(Exit("w1", "exp-1-1", 1, 2).ok());  // bad spec: never retried
  v1::Trial retried = GetTrial("exp-1-0");
  EXPECT_EQ(retried.state(), v1::TRIAL_STATE_PENDING);
  EXPECT_EQ(retried.attempt(), 2);
  EXPECT_EQ(retried.exit_code(), 6);
  v1::Trial failed = GetTrial("exp-1-1");
  EXPECT_EQ(failed.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_THAT(failed.status_message(), HasSubstr("exit code 2"));
  EXPECT_THAT(failed.status_message(), HasSubstr("not retried"));
  // A duplicate report of the same exit changes nothing.
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 6).ok());
  EXPECT_EQ(GetTrial("exp-1-0").attempt(), 2);
}

TEST_F(ControllerTest, MultiNodeGangRunsWhenAllSlicesRun) {
  Submit(book_.Add("wide", {"std"}, {1}, /*gpus=*/4, /*max_nodes=*/2));
  Beat("w1", 2);
  Beat("w2", 2);
  Tick();
  v1::Trial t = GetTrial("exp-1-0");
  ASSERT_EQ(t.state(), v1::TRIAL_STATE_SCHEDULED);
  ASSERT_EQ(t.placement().slices_size(), 2);
  EXPECT_EQ(t.placement().slices(1).first_rank(), 2);
  v1::HeartbeatResponse r1 = Beat("w1", 2);
  v1::HeartbeatResponse r2 = Beat("w2", 2);
  ASSERT_EQ(r1.actions_size(), 1);
  ASSERT_EQ(r2.actions_size(), 1);
  EXPECT_EQ(r1.actions(0).launch().world_size(), 4);
  EXPECT_NE(r1.actions(0).launch().slice_index(), r2.actions(0).launch().slice_index());
  Beat("w1", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_SCHEDULED);
  Beat("w2", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);
}

TEST_F(ControllerTest, CancelStopsGangsAndIsRefusedTwice) {
  Submit(book_.Add("stop", {"std"}, {1, 2}));
  Beat("w1", 1);
  Tick();
  Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  v1::CancelExperimentRequest cancel;
  cancel.set_experiment("exp-1");
  cancel.set_reason("wrong lr");
  auto canceled = controller_->Cancel(cancel);
  ASSERT_TRUE(canceled.ok()) << canceled.status();
  EXPECT_EQ(canceled->state(), v1::EXPERIMENT_STATE_CANCELED);
  EXPECT_EQ(canceled->trials(1).status_message(), "canceled: wrong lr");
  v1::HeartbeatResponse reply =
      Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_EQ(reply.actions_size(), 1);
  EXPECT_EQ(reply.actions(0).stop().trial_id(), "exp-1-0");
  EXPECT_EQ(reply.actions(0).stop().reason(), "trial canceled");
  EXPECT_EQ(controller_->Cancel(cancel).status().code(), absl::StatusCode::kFailedPrecondition);
  cancel.set_experiment("exp-9");
  EXPECT_EQ(controller_->Cancel(cancel).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, RestartRecoversStateAndAdoptsRunningGangs) {
  Submit(book_.Add("durable", {"std", "wk"}, {1}));
  Beat("w1", 2);
  Tick();
  Beat("w1", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING),
                 Process("exp-1-1", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_TRUE(Metric("exp-1-0", 1, "val_loss", 2.5, 10, 3).ok());
  const v1::Experiment before = Get("exp-1");

  Start();  // a new process over the same database file
  const v1::Experiment after = Get("exp-1");
  EXPECT_EQ(after.DebugString(), before.DebugString());
  // The worker re-reports exp-1-0 and something unknown; exp-1-1 it no longer runs, so it is
  // requeued at once instead of staying RUNNING with its device booked.
  v1::HeartbeatResponse reply =
      Beat("w1", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING),
                     Process("exp-7-0", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_EQ(reply.actions_size(), 1);
  EXPECT_EQ(reply.actions(0).stop().trial_id(), "exp-7-0");
  EXPECT_EQ(reply.actions(0).stop().reason(), "unknown trial");
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);
  const v1::Trial gone = GetTrial("exp-1-1");
  EXPECT_EQ(gone.state(), v1::TRIAL_STATE_PENDING);
  EXPECT_EQ(gone.attempt(), 2);
  EXPECT_THAT(gone.status_message(), HasSubstr("no longer runs attempt 1"));
  // New ids continue after the recovered ones.
  EXPECT_EQ(Submit(book_.Add("next", {"std"}, {1})).id(), "exp-2");
}

TEST_F(ControllerTest, RestartWithSilentWorkerRequeuesItsTrials) {
  Submit(book_.Add("silent", {"std"}, {1}));
  Beat("w1", 1);
  Tick();
  Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  Start();
  clock_.Advance(absl::Seconds(10));
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);  // lease restarted at recovery
  clock_.Advance(absl::Seconds(6));
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_PENDING);
  EXPECT_EQ(GetTrial("exp-1-0").attempt(), 2);
}

TEST_F(ControllerTest, TransitionIsWrittenBeforeItIsActedOn) {
  Submit(book_.Add("flaky", {"std"}, {1}));
  Beat("w1", 1);
  store_->fail_trial_writes = true;
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_PENDING);
  EXPECT_EQ(Beat("w1", 1).actions_size(), 0);  // nothing launched for an unsaved placement
  store_->fail_trial_writes = false;
  Tick();
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_SCHEDULED);
  EXPECT_EQ(Beat("w1", 1).actions_size(), 1);
}

TEST_F(ControllerTest, BadRequestsNameTheField) {
  v1::HeartbeatRequest beat;
  EXPECT_EQ(controller_->Heartbeat(beat).status().message(), "worker_id: required");
  beat.set_worker_id("w1");
  beat.mutable_inventory()->set_address("x");
  beat.mutable_inventory()->set_rendezvous_port_base(29500);
  beat.mutable_inventory()->add_gpus()->set_index(0);
  beat.mutable_inventory()->add_gpus()->set_index(0);
  EXPECT_THAT(controller_->Heartbeat(beat).status().message(), HasSubstr("inventory.gpus[1].index"));
  v1::ListExperimentsRequest list;
  list.set_page_token("abc");
  EXPECT_THAT(controller_->List(list).status().message(), HasSubstr("page_token"));
}

TEST_F(ControllerTest, BadMetricPointsAreNamedAndTheRestOfTheBatchIsKept) {
  Submit(book_.Add("m", {"std"}, {1}));
  v1::ReportMetricsRequest request;
  request.set_worker_id("w1");
  request.set_attempt(1);
  auto add = [&](const std::string& trial, const std::string& name, double value) {
    v1::MetricPoint* p = request.add_points();
    p->set_trial_id(trial);
    p->set_name(name);
    p->set_value(value);
    p->set_step(10);
    p->set_unix_time(1700000000);
  };
  add("exp-1-0", "grad_norm", std::numeric_limits<double>::infinity());
  add("exp-9-9", "train_loss", 2.0);
  add("exp-1-0", "train_loss", 2.5);
  add("exp-1-0", "", 1.0);
  v1::ReportMetricsResponse response;
  ASSERT_TRUE(controller_->ReportMetrics(request, &response).ok());
  ASSERT_EQ(response.rejected_size(), 3);
  EXPECT_THAT(response.rejected(0), HasSubstr("points[0] (grad_norm): value"));
  EXPECT_THAT(response.rejected(1), HasSubstr("points[1] (train_loss): trial_id: unknown trial"));
  EXPECT_THAT(response.rejected(2), HasSubstr("points[3] (): name: required"));
  const v1::Trial trial = GetTrial("exp-1-0");
  EXPECT_EQ(trial.latest_metrics().at("train_loss"), 2.5);
  EXPECT_EQ(trial.latest_metrics().count("grad_norm"), 0);
}

TEST_F(ControllerTest, ListFiltersAndPages) {
  Submit(book_.Add("alpha-1", {"std"}, {1}));
  Submit(book_.Add("alpha-2", {"std"}, {1}));
  Submit(book_.Add("beta", {"std"}, {1}));
  v1::CancelExperimentRequest cancel;
  cancel.set_experiment("beta");
  ASSERT_TRUE(controller_->Cancel(cancel).ok());

  v1::ListExperimentsRequest request;
  request.set_page_size(2);
  auto page = controller_->List(request);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->experiments_size(), 2);
  EXPECT_EQ(page->experiments(0).id(), "exp-3");  // newest first
  EXPECT_TRUE(page->experiments(0).trials(0).spec().ByteSizeLong() == 0);
  request.set_page_token(page->next_page_token());
  page = controller_->List(request);
  ASSERT_EQ(page->experiments_size(), 1);
  EXPECT_EQ(page->experiments(0).id(), "exp-1");
  EXPECT_TRUE(page->next_page_token().empty());

  v1::ListExperimentsRequest filtered;
  filtered.set_name_prefix("alpha");
  EXPECT_EQ(controller_->List(filtered)->experiments_size(), 2);
  filtered.clear_name_prefix();
  filtered.add_states(v1::EXPERIMENT_STATE_CANCELED);
  ASSERT_EQ(controller_->List(filtered)->experiments_size(), 1);
  EXPECT_EQ(controller_->List(filtered)->experiments(0).spec().name(), "beta");
}

TEST_F(ControllerTest, WatchStreamsSnapshotUpdatesMetricsAndEnd) {
  Submit(book_.Add("watched", {"std"}, {1}));
  v1::WatchExperimentRequest request;
  request.set_experiment("watched");
  request.set_include_metrics(true);
  v1::Experiment snapshot;
  auto queue = controller_->Watch(request, &snapshot);
  ASSERT_TRUE(queue.ok());
  EXPECT_EQ(snapshot.trials(0).state(), v1::TRIAL_STATE_PENDING);
  Beat("w1", 1);
  Tick();
  ASSERT_TRUE(Metric("exp-1-0", 1, "train_loss", 3.0, 1, 1).ok());
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 0).ok());
  std::vector<std::string> kinds;
  while (auto event = (*queue)->Pop(absl::ZeroDuration())) {
    if (event->has_trial_update()) {
      kinds.push_back("update:" + v1::TrialState_Name(event->trial_update().state()));
    } else if (event->has_metric()) {
      kinds.push_back("metric:" + event->metric().name());
    } else if (event->has_finished()) {
      kinds.push_back("finished:" + v1::ExperimentState_Name(event->finished().state()));
    }
  }
  EXPECT_THAT(kinds, ::testing::ElementsAre(
                         "update:TRIAL_STATE_SCHEDULED", "metric:train_loss",
                         "update:TRIAL_STATE_RUNNING", "update:TRIAL_STATE_COMPLETED",
                         "finished:EXPERIMENT_STATE_COMPLETED"));
  EXPECT_TRUE((*queue)->closed_and_drained());
}

TEST_F(ControllerTest, LogsAreStoredPerTrialAndRank) {
  Submit(book_.Add("logs", {"std"}, {1}));
  v1::ReportLogsRequest request;
  request.set_worker_id("w1");
  v1::LogChunk* chunk = request.add_chunks();
  chunk->set_trial_id("exp-1-0");
  chunk->set_text("step 1/10 | loss 4.2\n");
  chunk = request.add_chunks();
  chunk->set_trial_id("exp-1-0");
  chunk->set_rank(1);
  chunk->set_text("rank 1\n");
  const int64_t version = controller_->AwaitLogs(-1, absl::ZeroDuration());
  ASSERT_TRUE(controller_->ReportLogs(request).ok());
  EXPECT_NE(controller_->AwaitLogs(version, absl::ZeroDuration()), version);
  auto logs = controller_->ReadLogs("exp-1-0", 0, 0);
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].chunk.text(), "step 1/10 | loss 4.2\n");
  EXPECT_EQ(controller_->ReadLogs("exp-2-0", 0, 0).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ControllerTest, NanAndOutOfMemoryAreNotRetriedAndAbadWorkerIsExcluded) {
  Submit(book_.Add("classes", {"a", "b", "c"}, {1}, 1, 1, /*max_restarts=*/3));
  Beat("w1", 3);
  Tick();
  Beat("w1", 3, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING),
                 Process("exp-1-1", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, v1::TRAINER_EXIT_NON_FINITE).ok());
  ASSERT_TRUE(Exit("w1", "exp-1-1", 1, v1::TRAINER_EXIT_OUT_OF_MEMORY).ok());
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_FAILED);
  EXPECT_THAT(GetTrial("exp-1-0").status_message(), HasSubstr("TRAINER_EXIT_NON_FINITE"));
  EXPECT_EQ(GetTrial("exp-1-1").state(), v1::TRIAL_STATE_FAILED);
  // The third trial cannot even start on w1, three times (ControllerOptions: 3 in a row).
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Tick();
    ASSERT_EQ(GetTrial("exp-1-2").placement().slices(0).worker_id(), "w1");
    ASSERT_TRUE(Exit("w1", "exp-1-2", attempt, 1, nullptr, /*launch_failed=*/true).ok());
  }
  Beat("w2", 1);
  Tick();
  // w1 is unhealthy now: the retry goes to w2 although w1 has three free devices.
  EXPECT_EQ(GetTrial("exp-1-2").placement().slices(0).worker_id(), "w2");
}

TEST_F(ControllerTest, DeregisterRequeuesAtOnceAndGetPagesTrials) {
  Submit(book_.Add("pages", {"a", "b", "c"}, {1, 2}));
  Beat("w1", 1);
  Tick();
  ASSERT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_SCHEDULED);
  v1::DeregisterRequest bye;
  bye.set_worker_id("w1");
  ASSERT_TRUE(controller_->Deregister(bye).ok());
  const v1::Trial moved = GetTrial("exp-1-0");
  EXPECT_EQ(moved.state(), v1::TRIAL_STATE_PENDING);
  EXPECT_THAT(moved.status_message(), HasSubstr("worker w1 shut down"));

  v1::GetExperimentRequest get;
  get.set_experiment("pages");
  get.set_trial_page_size(4);
  auto first = controller_->Get(get);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->trials_size(), 4);
  EXPECT_EQ(first->trial_counts().at("pending"), 6);  // counts cover every trial
  get.set_trial_page_token(first->next_trial_page_token());
  auto second = controller_->Get(get);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->trials_size(), 2);
  EXPECT_EQ(second->trials(0).id(), "exp-1-4");
  EXPECT_TRUE(second->next_trial_page_token().empty());
}

TEST_F(ControllerTest, APlacementWakesItsWorkerAndASubmitAsksForATickAtOnce) {
  std::vector<std::string> woken;
  controller_->wakeups()->Add("w1", [&] { woken.push_back("w1"); });
  controller_->wakeups()->Add("w2", [&] { woken.push_back("w2"); });
  Beat("w1", 1);
  Beat("w2", 1);
  Tick();
  controller_->AwaitWork(absl::ZeroDuration());  // the new workers asked for one
  // Nothing asked for a tick since: the driver waits its whole period (fake time).
  absl::Time before = clock_.Now();
  controller_->AwaitWork(absl::Milliseconds(200));
  EXPECT_EQ(clock_.Now() - before, absl::Milliseconds(200));

  Submit(book_.Add("wake", {"a"}, {1}));
  before = clock_.Now();
  controller_->AwaitWork(absl::Milliseconds(200));
  EXPECT_EQ(clock_.Now(), before);  // the submit asked for a tick now
  EXPECT_TRUE(woken.empty());
  Tick();
  const std::string placed_on = GetTrial("exp-1-0").placement().slices(0).worker_id();
  EXPECT_EQ(woken, std::vector<std::string>{placed_on});
  // The woken worker's heartbeat carries the launch.
  const v1::HeartbeatResponse reply = Beat(placed_on, 1);
  ASSERT_EQ(reply.actions_size(), 1);
  EXPECT_EQ(reply.actions(0).launch().trial_id(), "exp-1-0");
}

TEST_F(ControllerTest, OutOfMemoryRetriesWithASmallerMicroBatchWhileTheSpecAllows) {
  const std::string yaml = book_.Add("oom", {"a"}, {1}, 1, 1, /*max_restarts=*/0);
  v1::TrainSpec& train = *book_.specs[yaml].trials[0].mutable_spec()->mutable_train();
  train.set_batch_size(16);
  train.set_grad_accum_steps(1);
  train.set_oom_min_batch_size(8);
  Submit(yaml);
  Beat("w1", 1);
  Tick();
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, v1::TRAINER_EXIT_OUT_OF_MEMORY).ok());
  v1::Trial retried = GetTrial("exp-1-0");
  // Retried although max_restarts is 0: halving bounds these retries.
  ASSERT_EQ(retried.state(), v1::TRIAL_STATE_PENDING);
  EXPECT_EQ(retried.attempt(), 2);
  EXPECT_EQ(retried.spec().train().batch_size(), 8);
  EXPECT_EQ(retried.spec().train().grad_accum_steps(), 2);
  EXPECT_THAT(retried.status_message(), HasSubstr("retrying with micro-batch 8 x 2"));
  // The next launch carries the smaller micro-batch.
  Tick();
  const v1::HeartbeatResponse reply = Beat("w1", 1);
  ASSERT_EQ(reply.actions_size(), 1);
  EXPECT_EQ(reply.actions(0).launch().spec().train().batch_size(), 8);
  EXPECT_EQ(reply.actions(0).launch().spec().train().grad_accum_steps(), 2);
  // 4 would be below oom_min_batch_size: the second OOM fails the trial.
  ASSERT_TRUE(Exit("w1", "exp-1-0", 2, v1::TRAINER_EXIT_OUT_OF_MEMORY).ok());
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(GetTrial("exp-1-0").spec().train().batch_size(), 8);
  // The spec survives a restart of the coordinator.
  Start();
  EXPECT_EQ(GetTrial("exp-1-0").spec().train().grad_accum_steps(), 2);
}

TEST_F(ControllerTest, AFinishedExperimentsPointsAreThinnedAfterTheRetention) {
  Submit(book_.Add("thin", {"a"}, {1}));
  Beat("w1", 1);
  Tick();
  Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  v1::ReportMetricsRequest points;
  points.set_worker_id("w1");
  points.set_attempt(1);
  for (int step = 1; step <= 3000; ++step) {
    v1::MetricPoint* p = points.add_points();
    p->set_trial_id("exp-1-0");
    p->set_name("train_loss");
    p->set_value(10.0 / step);
    p->set_step(step);
  }
  ASSERT_TRUE(controller_->ReportMetrics(points).ok());
  ASSERT_TRUE(Metric("exp-1-0", 1, "val_loss", 2.5, 3000, 3000).ok());
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 0).ok());
  Tick();
  ASSERT_EQ(store_->LoadMetrics("exp-1-0", "train_loss")->size(), 3000u);  // not yet
  clock_.Advance(ControllerOptions{}.finished_series_retention);
  Tick();
  const auto curve = store_->LoadMetrics("exp-1-0", "train_loss");
  ASSERT_TRUE(curve.ok());
  ASSERT_EQ(curve->size(), static_cast<size_t>(ControllerOptions{}.max_points_per_series));
  EXPECT_EQ(curve->front().step(), 1);
  EXPECT_EQ(curve->back().step(), 3000);
  for (size_t i = 1; i < curve->size(); ++i) {
    EXPECT_LT(curve->at(i - 1).step(), curve->at(i).step());
    EXPECT_LE(curve->at(i).step() - curve->at(i - 1).step(), 4);  // evenly spread (3000 / 1000)
  }
  EXPECT_EQ(store_->LoadMetrics("exp-1-0", "val_loss")->size(), 1u);  // short series untouched
}

TEST_F(ControllerTest, AFinishedTrialsSeriesAgeOutWhileItsExperimentRuns) {
  Submit(book_.Add("age", {"a"}, {1, 2}));
  Beat("w1", 2);
  Tick();
  Beat("w1", 2, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING),
                 Process("exp-1-1", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_TRUE(Metric("exp-1-0", 1, "val_loss", 3.0, 10, 1).ok());
  ASSERT_TRUE(Metric("exp-1-1", 1, "val_loss", 2.0, 10, 1).ok());
  ASSERT_TRUE(Exit("w1", "exp-1-0", 1, 0).ok());
  clock_.Advance(ControllerOptions{}.finished_series_retention - absl::Seconds(1));
  Tick();
  EXPECT_EQ(Scrape("gauntlet_trial_val_loss", "trial", "exp-1-0"), 3.0);  // kept a while
  clock_.Advance(absl::Seconds(1));
  Tick();
  EXPECT_TRUE(std::isnan(Scrape("gauntlet_trial_val_loss", "trial", "exp-1-0")));
  EXPECT_EQ(Scrape("gauntlet_trial_val_loss", "trial", "exp-1-1"), 2.0);  // still running
}

TEST_F(ControllerTest, ASubmitIsWrittenWithoutTheLockAndItsNameIsHeldMeanwhile) {
  const std::string yaml = book_.Add("big", {"a"}, {1, 2, 3});
  Beat("w1", 1);
  absl::Notification entered, release;
  store_->before_create = [&] {
    entered.Notify();
    release.WaitForNotification();
  };
  std::thread submitter([&] { Submit(yaml); });
  entered.WaitForNotification();
  // While the experiment is being written: heartbeats go on, its name is taken, and it cannot
  // be seen yet.
  absl::Notification beat_done;
  std::thread beater([&] {
    Beat("w1", 1);
    beat_done.Notify();
  });
  const bool beat_finished = beat_done.WaitForNotificationWithTimeout(absl::Seconds(30));
  v1::SubmitExperimentRequest again;
  again.set_spec_yaml(yaml);
  const absl::StatusCode duplicate = controller_->Submit(again).status().code();
  v1::GetExperimentRequest get;
  get.set_experiment("big");
  const absl::StatusCode unseen = controller_->Get(get).status().code();
  release.Notify();
  submitter.join();
  beater.join();
  store_->before_create = nullptr;
  EXPECT_TRUE(beat_finished) << "the heartbeat waited for the experiment's write";
  EXPECT_EQ(duplicate, absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(unseen, absl::StatusCode::kNotFound);
  EXPECT_EQ(Get("big").trials_size(), 3);

  // A write the store refuses gives the name back.
  const std::string other = book_.Add("refused", {"a"}, {1});
  store_->fail_creates = true;
  v1::SubmitExperimentRequest refused;
  refused.set_spec_yaml(other);
  EXPECT_EQ(controller_->Submit(refused).status().code(), absl::StatusCode::kUnavailable);
  store_->fail_creates = false;
  EXPECT_EQ(Submit(other).trials_size(), 1);
}

TEST_F(ControllerTest, CancelWritesEveryTrialInOneTransaction) {
  Submit(book_.Add("many", {"a", "b"}, {1, 2, 3}));
  Beat("w1", 2);
  Tick();
  store_->fail_trial_writes = true;
  v1::CancelExperimentRequest cancel;
  cancel.set_experiment("many");
  EXPECT_FALSE(controller_->Cancel(cancel).ok());
  // All or nothing: no trial was canceled by the refused write.
  const v1::Experiment refused = Get("many");
  for (const v1::Trial& t : refused.trials()) {
    EXPECT_NE(t.state(), v1::TRIAL_STATE_CANCELED) << t.id();
  }
  store_->fail_trial_writes = false;
  ASSERT_TRUE(controller_->Cancel(cancel).ok());
  const v1::Experiment canceled = Get("many");
  for (const v1::Trial& t : canceled.trials()) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_CANCELED) << t.id();
  }
}

TEST_F(ControllerTest, AMetricWriteInFlightDoesNotHoldUpHeartbeats) {
  Submit(book_.Add("busy", {"a"}, {1}));
  Beat("w1", 1);
  Tick();
  Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
  ASSERT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);
  absl::Notification entered, release;
  std::atomic<int> writes{0};
  store_->before_save_metrics = [&] {
    if (writes++ > 0) return;  // only the first write is held
    entered.Notify();
    release.WaitForNotification();
  };
  std::thread writer([&] { EXPECT_TRUE(Metric("exp-1-0", 1, "train_loss", 1.0, 1, 1).ok()); });
  entered.WaitForNotification();
  // A second batch queues behind the first without holding the controller's lock meanwhile.
  std::thread second([&] { EXPECT_TRUE(Metric("exp-1-0", 1, "train_loss", 0.5, 2, 2).ok()); });
  // SQLite is busy with the points; a heartbeat (and the control loop) goes on without it.
  absl::Notification beat_done;
  std::thread beater([&] {
    Beat("w1", 1, {Process("exp-1-0", 1, v1::PROCESS_STATE_RUNNING)});
    beat_done.Notify();
  });
  const bool beat_finished = beat_done.WaitForNotificationWithTimeout(absl::Seconds(30));
  release.Notify();
  writer.join();
  second.join();
  beater.join();
  EXPECT_TRUE(beat_finished) << "the heartbeat waited for the metric write";
  store_->before_save_metrics = nullptr;
  EXPECT_EQ(GetTrial("exp-1-0").latest_metrics().at("train_loss"), 0.5);
  EXPECT_EQ(store_->LoadMetrics("exp-1-0", "train_loss")->size(), 2u);
  // The stored row is the newest: a restarted coordinator sees the second batch's values.
  Start();
  EXPECT_EQ(GetTrial("exp-1-0").latest_metrics().at("train_loss"), 0.5);
  EXPECT_EQ(GetTrial("exp-1-0").state(), v1::TRIAL_STATE_RUNNING);
}

}  // namespace
}  // namespace gauntlet
