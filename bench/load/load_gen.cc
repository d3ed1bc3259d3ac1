// Load generator for the coordinator: emulates N worker agents (8 GPUs each by default) that
// heartbeat at the interval the coordinator asks for, acknowledge the trials it launches on
// them (listed RUNNING in later heartbeats), and stream metric points for those trials, after
// submitting one experiment of M single-GPU trials. Everything goes over the real gRPC API on
// loopback; nothing trains. Each emulated worker holds WatchActions open and heartbeats at once
// when woken, as the real agent does. Probes (--probes) submit one-trial experiments while the
// load runs and time submit -> launch received. Prints one JSON object with client-side
// latencies and throughput. With --workers 0 only the probes are sent (their launches reach real
// workers; bench/load/launch_latency.py joins the two).
// bench/load/run_load.py starts the coordinator, runs this at several sizes and adds the
// coordinator's own figures (server-side RPC histograms, restarts, CPU).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gauntlet/v1/coordinator.grpc.pb.h"
#include "gauntlet/v1/worker.grpc.pb.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "Coordinator address (loopback)");
ABSL_FLAG(int, workers, 100, "Emulated worker agents");
ABSL_FLAG(int, gpus_per_worker, 8, "GPUs each emulated worker reports");
ABSL_FLAG(int, trials, 1000, "Single-GPU trials submitted in one experiment (at most 10,000)");
ABSL_FLAG(double, duration_seconds, 40, "Length of the run after the submit");
ABSL_FLAG(double, warmup_seconds, 10,
          "Latencies are recorded only this long after the submit (placement settles first)");
ABSL_FLAG(int, heartbeat_threads, 4, "Client threads sharing the workers' heartbeats");
ABSL_FLAG(int, metric_threads, 2, "Client threads sending metric batches back to back");
ABSL_FLAG(int, metric_batch, 100, "Metric points per ReportMetrics call");
ABSL_FLAG(bool, action_streams, true,
          "Each worker holds WatchActions open and heartbeats when woken (as agents do)");
ABSL_FLAG(int, probes, 0,
          "One-trial experiments submitted after the warm-up, one every --probe_every seconds, "
          "each timed from its submit to its launch");
ABSL_FLAG(double, probe_every, 0.5, "Seconds between probes");
ABSL_FLAG(std::string, probe_spec, "",
          "YAML file of the probe experiment without its name line (default: one GPU trial)");

namespace {

using Clock = std::chrono::steady_clock;
using gauntlet::v1::Coordinator;
using gauntlet::v1::WorkerService;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Latencies of one kind of call, from several threads.
class Samples {
 public:
  void Add(double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    values_.push_back(seconds);
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_.size();
  }
  // Nearest-rank percentile in milliseconds; 0 when empty.
  double PercentileMs(double p) {
    std::lock_guard<std::mutex> lock(mu_);
    if (values_.empty()) return 0;
    std::sort(values_.begin(), values_.end());
    size_t rank = static_cast<size_t>(p / 100.0 * values_.size());
    return 1000 * values_[std::min(rank, values_.size() - 1)];
  }
  double MaxMs() {
    std::lock_guard<std::mutex> lock(mu_);
    return values_.empty() ? 0 : 1000 * *std::max_element(values_.begin(), values_.end());
  }

 private:
  std::mutex mu_;
  std::vector<double> values_;
};

struct RunningTrial {
  std::string worker_id;
  std::string trial_id;
  int attempt = 0;
  int64_t step = 0;
};

// The heartbeat threads' shared wake-up: a woken worker is due now.
struct WakeGroup {
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false;  // some worker of the group was woken since the thread last looked
};

struct EmulatedWorker {
  std::string id;
  Clock::time_point due;
  std::vector<gauntlet::v1::ProcessStatus> processes;
  bool registered = false;
  // Set by the worker's WatchActions reactor, taken by its heartbeat thread.
  std::unique_ptr<std::atomic<bool>> woken = std::make_unique<std::atomic<bool>>(false);
  WakeGroup* group = nullptr;
};

struct Shared {
  // Set by the main thread once the submit returns; read by every client thread.
  std::atomic<Clock::time_point::rep> measure_from{
      Clock::time_point::max().time_since_epoch().count()};
  std::atomic<Clock::time_point::rep> end{Clock::time_point::max().time_since_epoch().count()};
  std::atomic<Clock::time_point::rep> submit_sent{0};
  bool Measured(Clock::time_point from, Clock::time_point to) const {
    return from.time_since_epoch().count() >= measure_from.load() &&
           to.time_since_epoch().count() < end.load();
  }
  std::atomic<bool> stop{false};
  std::atomic<int> registered{0};
  std::atomic<int> launches{0};
  std::atomic<int> stops{0};
  std::atomic<int> heartbeat_errors{0};
  std::atomic<int64_t> points_stored{0};
  std::atomic<int64_t> points_rejected{0};
  std::atomic<int> metric_errors{0};
  std::atomic<double> first_launch_s{-1};
  std::atomic<double> all_placed_s{-1};
  int placeable = 0;
  double interval_s = 2;
  Samples heartbeat, metrics, lag;
  std::mutex running_mu;
  std::vector<RunningTrial> running;
  // Trial id -> when its launch was received (probes are matched against it).
  std::mutex launched_mu;
  std::unordered_map<std::string, Clock::time_point> launched;
  std::atomic<int> wakeups{0};
};

// One worker's WatchActions stream (callback API: no thread per stream). Every message marks
// the worker due and wakes its heartbeat thread.
class ActionsReader : public grpc::ClientReadReactor<gauntlet::v1::ActionsReady> {
 public:
  ActionsReader(WorkerService::Stub* stub, EmulatedWorker* worker, Shared* shared)
      : worker_(worker), shared_(shared) {
    request_.set_worker_id(worker->id);
    stub->async()->WatchActions(&context_, &request_, this);
    StartRead(&ready_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended (shutdown); heartbeats go on without it
    ++shared_->wakeups;
    worker_->woken->store(true);
    {
      std::lock_guard<std::mutex> lock(worker_->group->mu);
      worker_->group->pending = true;
    }
    worker_->group->cv.notify_all();
    StartRead(&ready_);
  }
  void OnDone(const grpc::Status&) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  void Cancel() { context_.TryCancel(); }
  void Await() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

 private:
  EmulatedWorker* worker_;
  Shared* shared_;
  grpc::ClientContext context_;
  gauntlet::v1::WatchActionsRequest request_;
  gauntlet::v1::ActionsReady ready_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

std::unique_ptr<WorkerService::Stub> WorkerStub() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one connection per thread
  return WorkerService::NewStub(grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_coordinator), grpc::InsecureChannelCredentials(), args));
}

gauntlet::v1::WorkerInventory Inventory(const std::string& id) {
  gauntlet::v1::WorkerInventory inventory;
  inventory.set_hostname(id);
  inventory.set_address("127.0.0.1");
  inventory.set_rendezvous_port_base(29500);
  for (int g = 0; g < absl::GetFlag(FLAGS_gpus_per_worker); ++g) {
    gauntlet::v1::GpuInfo* gpu = inventory.add_gpus();
    gpu->set_index(g);
    gpu->set_name("emulated H200");
    gpu->set_memory_bytes(int64_t{141} << 30);
    gpu->set_uuid(absl::StrCat("GPU-", id, "-", g));
  }
  return inventory;
}

void HeartbeatLoop(std::vector<EmulatedWorker>* workers, Shared* shared) {
  std::unique_ptr<WorkerService::Stub> stub = WorkerStub();
  std::unordered_map<std::string, gauntlet::v1::WorkerInventory> inventories;
  for (const EmulatedWorker& w : *workers) inventories[w.id] = Inventory(w.id);
  WakeGroup* group = workers->front().group;
  while (!shared->stop) {
    {
      std::lock_guard<std::mutex> lock(group->mu);
      group->pending = false;
    }
    Clock::time_point now = Clock::now();
    for (EmulatedWorker& w : *workers) {
      if (w.woken->exchange(false)) w.due = now;
    }
    auto next = std::min_element(workers->begin(), workers->end(),
                                 [](const auto& a, const auto& b) { return a.due < b.due; });
    if (next->due > now) {
      std::unique_lock<std::mutex> lock(group->mu);
      group->cv.wait_for(
          lock, std::min<Clock::duration>(next->due - now, std::chrono::milliseconds(50)),
          [&] { return group->pending; });
      continue;
    }
    gauntlet::v1::HeartbeatRequest request;
    request.set_worker_id(next->id);
    *request.mutable_inventory() = inventories[next->id];
    for (const auto& p : next->processes) *request.add_processes() = p;
    gauntlet::v1::HeartbeatResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const Clock::time_point sent = Clock::now();
    grpc::Status status = stub->Heartbeat(&context, request, &response);
    const Clock::time_point done = Clock::now();
    if (shared->Measured(sent, sent)) {
      shared->heartbeat.Add(Seconds(done - sent));
      shared->lag.Add(Seconds(sent - next->due));
    }
    if (!status.ok()) {
      ++shared->heartbeat_errors;
      next->due = done + std::chrono::milliseconds(500);
      continue;
    }
    if (!next->registered) {
      next->registered = true;
      ++shared->registered;
    }
    const double interval =
        response.interval_seconds() > 0 ? response.interval_seconds() : shared->interval_s;
    next->due +=
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval));
    if (next->due < done) next->due = done;  // fell behind: do not burst to catch up
    for (const gauntlet::v1::WorkerAction& action : response.actions()) {
      if (action.has_launch()) {
        const auto& launch = action.launch();
        gauntlet::v1::ProcessStatus process;
        process.set_trial_id(launch.trial_id());
        process.set_attempt(launch.attempt());
        process.set_state(gauntlet::v1::PROCESS_STATE_RUNNING);
        process.add_ranks(0);
        next->processes.push_back(process);
        {
          std::lock_guard<std::mutex> lock(shared->running_mu);
          shared->running.push_back({next->id, launch.trial_id(), launch.attempt(), 0});
        }
        {
          std::lock_guard<std::mutex> lock(shared->launched_mu);
          shared->launched.emplace(launch.trial_id(), done);
        }
        const Clock::time_point submitted{Clock::duration(shared->submit_sent.load())};
        const double since_submit = Seconds(done - submitted);
        if (shared->launches.fetch_add(1) == 0) shared->first_launch_s = since_submit;
        if (shared->launches.load() == shared->placeable) shared->all_placed_s = since_submit;
      } else if (action.has_stop()) {
        ++shared->stops;
        auto& ps = next->processes;
        ps.erase(
            std::remove_if(ps.begin(), ps.end(),
                           [&](const auto& p) { return p.trial_id() == action.stop().trial_id(); }),
            ps.end());
      }
    }
  }
}

void MetricLoop(int thread_index, Shared* shared) {
  std::unique_ptr<WorkerService::Stub> stub = WorkerStub();
  const int batch = absl::GetFlag(FLAGS_metric_batch);
  size_t cursor = thread_index;
  while (!shared->stop) {
    RunningTrial trial;
    {
      std::lock_guard<std::mutex> lock(shared->running_mu);
      if (shared->running.empty()) {
        trial.trial_id.clear();
      } else {
        RunningTrial& t = shared->running[cursor++ % shared->running.size()];
        trial = t;
        t.step += batch;
      }
    }
    if (trial.trial_id.empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    gauntlet::v1::ReportMetricsRequest request;
    request.set_worker_id(trial.worker_id);
    request.set_attempt(trial.attempt);
    const double unix_now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (int i = 0; i < batch; ++i) {
      gauntlet::v1::MetricPoint* point = request.add_points();
      point->set_trial_id(trial.trial_id);
      point->set_name("train_loss");
      point->set_step(trial.step + i + 1);
      point->set_value(4.0 / (1.0 + 0.001 * (trial.step + i)));
      point->set_tokens((trial.step + i + 1) * 8192);
      point->set_train_seconds(0.01 * (trial.step + i + 1));
      point->set_unix_time(unix_now);
    }
    gauntlet::v1::ReportMetricsResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const Clock::time_point sent = Clock::now();
    grpc::Status status = stub->ReportMetrics(&context, request, &response);
    const Clock::time_point done = Clock::now();
    if (!status.ok()) {
      ++shared->metric_errors;
      continue;
    }
    if (shared->Measured(sent, done)) {
      shared->metrics.Add(Seconds(done - sent));
      shared->points_stored += batch - response.rejected_size();
      shared->points_rejected += response.rejected_size();
    }
  }
}

std::string SpecYaml(int trials) {
  std::string seeds;
  for (int i = 1; i <= trials; ++i) absl::StrAppend(&seeds, i == 1 ? "" : ", ", i);
  return absl::StrCat("name: load-", trials, "\n",
                      "data: {path: tinyshakespeare/input.txt, tokenizer: char}\n"
                      "model: {size: tiny}\n"
                      "budget: {steps: 1000000}\n"
                      "resources: {device: gpu, gpus_per_trial: 1}\n"
                      "variants:\n  - name: standard\n    model: {arch: standard}\n"
                      "seeds: [",
                      seeds, "]\n");
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n_workers = absl::GetFlag(FLAGS_workers);
  const int n_trials = absl::GetFlag(FLAGS_trials);
  const int n_hb_threads = std::max(1, std::min(absl::GetFlag(FLAGS_heartbeat_threads), n_workers));
  Shared shared;
  shared.placeable = std::min(n_trials, n_workers * absl::GetFlag(FLAGS_gpus_per_worker));

  // Workers spread evenly over one interval, as real agents started at different times are.
  std::vector<std::vector<EmulatedWorker>> groups(n_workers > 0 ? n_hb_threads : 0);
  std::vector<WakeGroup> wake_groups(groups.size());
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < n_workers; ++i) {
    EmulatedWorker w;
    w.id = absl::StrFormat("load-w%05d", i);
    w.due = start + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(shared.interval_s * i / n_workers));
    w.group = &wake_groups[i % n_hb_threads];
    groups[i % n_hb_threads].push_back(std::move(w));
  }
  std::vector<std::unique_ptr<WorkerService::Stub>> stream_stubs;
  std::vector<std::unique_ptr<ActionsReader>> readers;
  if (absl::GetFlag(FLAGS_action_streams)) {
    for (auto& group : groups) {
      stream_stubs.push_back(WorkerStub());
      for (EmulatedWorker& w : group) {
        readers.push_back(std::make_unique<ActionsReader>(stream_stubs.back().get(), &w, &shared));
      }
    }
  }
  std::vector<std::thread> threads;
  for (auto& group : groups) threads.emplace_back(HeartbeatLoop, &group, &shared);

  const Clock::time_point register_deadline = start + std::chrono::seconds(60);
  while (shared.registered < n_workers && Clock::now() < register_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double register_s = Seconds(Clock::now() - start);

  auto coordinator = Coordinator::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_coordinator), grpc::InsecureChannelCredentials()));
  std::vector<std::pair<std::string, Clock::time_point>> probes;  // experiment id, submit sent
  std::string probe_spec;
  if (!absl::GetFlag(FLAGS_probe_spec).empty()) {
    std::ifstream in(absl::GetFlag(FLAGS_probe_spec));
    std::stringstream text;
    text << in.rdbuf();
    probe_spec = text.str();
    if (probe_spec.empty()) {
      std::cerr << "load_gen: --probe_spec " << absl::GetFlag(FLAGS_probe_spec) << " is empty"
                << std::endl;
      return 2;
    }
  }
  const auto run_probes = [&] {
    for (int k = 0; k < absl::GetFlag(FLAGS_probes); ++k) {
      const Clock::time_point due =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(absl::GetFlag(FLAGS_probe_every)));
      gauntlet::v1::SubmitExperimentRequest request;
      request.set_spec_yaml(
          probe_spec.empty()
              ? absl::StrCat("name: probe-", k, "\n",
                             "data: {path: tinyshakespeare/input.txt, tokenizer: char}\n"
                             "model: {size: tiny, arch: standard}\nbudget: {steps: 1000000}\n"
                             "resources: {device: gpu, gpus_per_trial: 1}\n"
                             "variants: [{name: standard}]\nseeds: [1]\n")
              : absl::StrCat("name: probe-", k, "\n", probe_spec));
      gauntlet::v1::SubmitExperimentResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      const Clock::time_point sent = Clock::now();
      grpc::Status status = coordinator->SubmitExperiment(&context, request, &response);
      if (!status.ok()) {
        std::cerr << "load_gen: probe submit failed: " << status.error_message() << std::endl;
      } else {
        probes.emplace_back(response.experiment().id(), sent);
      }
      std::this_thread::sleep_until(due);
    }
  };
  if (n_workers == 0) {
    // Probes only: real workers receive the launches; print when each submit was sent
    // (CLOCK_MONOTONIC seconds, what Python's time.monotonic() reads).
    run_probes();
    std::printf("{\"probes\": [");
    for (size_t i = 0; i < probes.size(); ++i) {
      std::printf("%s{\"experiment\": \"%s\", \"sent_monotonic_s\": %.6f}", i ? ", " : "",
                  probes[i].first.c_str(), Seconds(probes[i].second.time_since_epoch()));
    }
    std::printf("]}\n");
    return 0;
  }
  gauntlet::v1::SubmitExperimentRequest submit;
  submit.set_spec_yaml(SpecYaml(n_trials));
  gauntlet::v1::SubmitExperimentResponse submitted;
  grpc::ClientContext submit_context;
  submit_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  const Clock::time_point submit_sent = Clock::now();
  shared.submit_sent = submit_sent.time_since_epoch().count();
  grpc::Status submit_status = coordinator->SubmitExperiment(&submit_context, submit, &submitted);
  const Clock::time_point submit_done = Clock::now();
  if (!submit_status.ok()) {
    std::cerr << "load_gen: submit failed: " << submit_status.error_message() << std::endl;
    shared.stop = true;
    for (auto& t : threads) t.join();
    return 1;
  }
  const auto as_duration = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point end = submit_done + as_duration(absl::GetFlag(FLAGS_duration_seconds));
  shared.measure_from =
      (submit_done + as_duration(absl::GetFlag(FLAGS_warmup_seconds))).time_since_epoch().count();
  shared.end = end.time_since_epoch().count();
  for (int i = 0; i < absl::GetFlag(FLAGS_metric_threads); ++i) {
    threads.emplace_back(MetricLoop, i, &shared);
  }
  std::this_thread::sleep_until(
      submit_done + as_duration(absl::GetFlag(FLAGS_warmup_seconds)));
  run_probes();
  std::this_thread::sleep_until(end);
  shared.stop = true;
  for (auto& t : threads) t.join();
  for (auto& reader : readers) reader->Cancel();
  for (auto& reader : readers) reader->Await();
  // Submit -> launch of each probe (its trial is <experiment id>-0).
  Samples probe_latency;
  int probes_unplaced = 0;
  {
    std::lock_guard<std::mutex> lock(shared.launched_mu);
    for (const auto& [experiment, sent] : probes) {
      auto it = shared.launched.find(experiment + "-0");
      if (it == shared.launched.end()) {
        ++probes_unplaced;
      } else {
        probe_latency.Add(Seconds(it->second - sent));
      }
    }
  }

  const double window = absl::GetFlag(FLAGS_duration_seconds) - absl::GetFlag(FLAGS_warmup_seconds);
  std::printf(
      "{\"workers\": %d, \"gpus_per_worker\": %d, \"trials\": %d, \"placeable\": %d,\n"
      " \"register_s\": %.2f, \"registered\": %d, \"submit_rpc_s\": %.3f,\n"
      " \"submit_to_first_launch_s\": %.3f, \"submit_to_all_placed_s\": %.3f, \"launches\": %d,"
      " \"stops\": %d,\n"
      " \"heartbeats\": %zu, \"heartbeats_per_s\": %.1f, \"heartbeat_p50_ms\": %.2f,"
      " \"heartbeat_p99_ms\": %.2f, \"heartbeat_max_ms\": %.2f, \"heartbeat_errors\": %d,\n"
      " \"heartbeat_send_lag_p99_ms\": %.2f,\n"
      " \"metric_calls\": %zu, \"metric_batch\": %d, \"points_per_s\": %.0f,"
      " \"points_rejected\": %lld, \"metric_errors\": %d,"
      " \"metric_p50_ms\": %.2f, \"metric_p99_ms\": %.2f, \"window_s\": %.1f,\n"
      " \"wakeups\": %d, \"probes\": %zu, \"probes_unplaced\": %d,"
      " \"probe_launch_p50_ms\": %.1f, \"probe_launch_p99_ms\": %.1f,"
      " \"probe_launch_max_ms\": %.1f}\n",
      n_workers, absl::GetFlag(FLAGS_gpus_per_worker), n_trials, shared.placeable, register_s,
      shared.registered.load(), Seconds(submit_done - submit_sent), shared.first_launch_s.load(),
      shared.all_placed_s.load(), shared.launches.load(), shared.stops.load(),
      shared.heartbeat.size(), shared.heartbeat.size() / window, shared.heartbeat.PercentileMs(50),
      shared.heartbeat.PercentileMs(99), shared.heartbeat.MaxMs(), shared.heartbeat_errors.load(),
      shared.lag.PercentileMs(99), shared.metrics.size(), absl::GetFlag(FLAGS_metric_batch),
      shared.points_stored.load() / window, static_cast<long long>(shared.points_rejected.load()),
      shared.metric_errors.load(), shared.metrics.PercentileMs(50), shared.metrics.PercentileMs(99),
      window, shared.wakeups.load(), probes.size(), probes_unplaced,
      probe_latency.PercentileMs(50), probe_latency.PercentileMs(99), probe_latency.MaxMs());
  return 0;
}
