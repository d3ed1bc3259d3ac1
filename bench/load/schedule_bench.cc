// One scheduling pass (gauntlet::Schedule, the decision the coordinator's control loop makes)
// at the size: W workers x G GPUs and P pending single-GPU trials, in three states of
// the cluster: every GPU free (the pass places W x G trials), none free (the short-cut), and
// the steady state with one GPU free on each of `--free_workers` workers. Prints one JSON
// object per state with the median and the slowest of `--repeats` passes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "server/scheduler.h"

ABSL_FLAG(int, workers, 1000, "Workers");
ABSL_FLAG(int, gpus_per_worker, 8, "GPUs per worker");
ABSL_FLAG(int, pending, 10000, "Pending single-GPU trials");
ABSL_FLAG(int, free_workers, 8, "Steady state: workers with one free GPU");
ABSL_FLAG(int, repeats, 7, "Passes per state");

namespace {

gauntlet::ClusterSnapshot Cluster(int busy_per_worker, int free_workers) {
  gauntlet::ClusterSnapshot cluster;
  const int gpus = absl::GetFlag(FLAGS_gpus_per_worker);
  for (int w = 0; w < absl::GetFlag(FLAGS_workers); ++w) {
    gauntlet::WorkerSnapshot& worker = cluster.workers.emplace_back();
    worker.id = absl::StrFormat("w%05d", w);
    worker.address = "10.0.0.1";
    for (int g = 0; g < gpus; ++g) worker.gpus.push_back(g);
    const int busy = w < free_workers ? gpus - 1 : busy_per_worker;
    for (int g = 0; g < busy; ++g) {
      worker.busy_gpus.insert(g);
      worker.busy_ports.insert(worker.rendezvous_port_base + g);
    }
  }
  return cluster;
}

void Run(const char* state, const gauntlet::ClusterSnapshot& cluster,
         const std::vector<gauntlet::PendingTrial>& pending) {
  std::vector<double> ms;
  size_t placed = 0;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    gauntlet::ScheduleResult result = gauntlet::Schedule(cluster, pending);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           start).count());
    placed = result.placements.size();
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"state\": \"%s\", \"workers\": %zu, \"pending\": %zu, \"placed\": %zu, "
              "\"pass_median_ms\": %.2f, \"pass_max_ms\": %.2f}\n",
              state, cluster.workers.size(), pending.size(), placed, ms[ms.size() / 2],
              ms.back());
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<gauntlet::PendingTrial> pending;
  for (int i = 0; i < absl::GetFlag(FLAGS_pending); ++i) {
    gauntlet::PendingTrial& t = pending.emplace_back();
    t.id = absl::StrFormat("exp-1-%d", i);
    t.sequence = 1;
    t.device = "gpu";
  }
  const int gpus = absl::GetFlag(FLAGS_gpus_per_worker);
  Run("all_free", Cluster(0, 0), pending);
  Run("none_free", Cluster(gpus, 0), pending);
  Run("steady_one_free_on_some", Cluster(gpus, absl::GetFlag(FLAGS_free_workers)), pending);
  return 0;
}
