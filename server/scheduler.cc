#include "server/scheduler.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

const char* KindName(DeviceKind kind) { return kind == DeviceKind::kGpu ? "gpu" : "cpu"; }

// Free devices of `kind` on `worker`, lowest index first.
std::vector<int> FreeDevices(const WorkerSnapshot& worker, DeviceKind kind) {
  std::vector<int> free;
  if (kind == DeviceKind::kGpu) {
    for (int gpu : worker.gpus) {
      if (!worker.busy_gpus.count(gpu)) free.push_back(gpu);
    }
    std::sort(free.begin(), free.end());
  } else {
    for (int slot = 0; slot < worker.cpu_slots; ++slot) {
      if (!worker.busy_cpu_slots.count(slot)) free.push_back(slot);
    }
  }
  return free;
}

int FreePort(const WorkerSnapshot& worker) {
  for (int port = worker.rendezvous_port_base;
       port < worker.rendezvous_port_base + kRendezvousPortRange; ++port) {
    if (!worker.busy_ports.count(port)) return port;
  }
  return -1;
}

// Workers with free devices of one kind, ordered by (free count, index): the best fit for a
// gang on one worker is a lower_bound, not a scan, so placing P trials costs O(P log W).
using ByFree = std::set<std::pair<int, size_t>>;

// Chooses (worker index, device count) slices for `need` devices, or empty when it cannot fit.
std::vector<std::pair<size_t, int>> ChooseSlices(const std::vector<WorkerSnapshot>& workers,
                                                 const std::vector<std::vector<int>>& free,
                                                 const ByFree& by_free, int need, int max_nodes) {
  // Best fit on one worker: the fewest free devices that still hold the whole gang (ties: the
  // lowest index).
  auto best = by_free.lower_bound({need, 0});
  if (best != by_free.end()) return {{best->second, need}};
  if (max_nodes <= 1) return {};

  // Span the fewest workers: take the largest holes, then best-fit the remainder.
  std::vector<size_t> order;
  for (size_t w = 0; w < workers.size(); ++w) {
    if (!free[w].empty()) order.push_back(w);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return free[a].size() > free[b].size(); });
  int total = 0;
  size_t nodes = 0;
  while (nodes < order.size() && total < need) total += free[order[nodes++]].size();
  if (total < need || static_cast<int>(nodes) > max_nodes) return {};

  std::vector<std::pair<size_t, int>> slices;
  int remaining = need;
  for (size_t i = 0; i + 1 < nodes; ++i) {
    const int take = static_cast<int>(free[order[i]].size());
    slices.push_back({order[i], take});
    remaining -= take;
  }
  // The last slice: the smallest remaining hole that holds the rest.
  int last = -1;
  for (size_t i = nodes - 1; i < order.size(); ++i) {
    const int n = static_cast<int>(free[order[i]].size());
    if (n >= remaining && (last < 0 || n < static_cast<int>(free[order[last]].size()))) last = i;
  }
  slices.push_back({order[last], remaining});
  return slices;
}

}  // namespace

DeviceKind ResolveDeviceKind(const std::string& device, const ClusterSnapshot& cluster) {
  if (device == "gpu") return DeviceKind::kGpu;
  if (device == "cpu") return DeviceKind::kCpu;
  for (const WorkerSnapshot& worker : cluster.workers) {
    if (!worker.gpus.empty()) return DeviceKind::kGpu;
  }
  return DeviceKind::kCpu;
}

ScheduleResult Schedule(const ClusterSnapshot& cluster, std::vector<PendingTrial> pending) {
  ScheduleResult result;
  std::stable_sort(pending.begin(), pending.end(),
                   [](const PendingTrial& a, const PendingTrial& b) {
                     if (a.priority != b.priority) return a.priority > b.priority;
                     return a.sequence < b.sequence;
                   });
  if (cluster.workers.empty()) {
    for (const PendingTrial& trial : pending) result.waiting[trial.id] = "no workers registered";
    return result;
  }
  std::vector<WorkerSnapshot> workers = cluster.workers;
  // Free devices per kind and worker, computed once and kept up to date as trials are placed, so
  // a pass costs O(workers) per trial that can be placed and O(1) per trial that cannot.
  std::map<DeviceKind, std::vector<std::vector<int>>> free;
  std::map<DeviceKind, ByFree> by_free;
  std::map<DeviceKind, int> total_free;
  for (DeviceKind kind : {DeviceKind::kGpu, DeviceKind::kCpu}) {
    for (size_t w = 0; w < workers.size(); ++w) {
      free[kind].push_back(FreeDevices(workers[w], kind));
      const int n = static_cast<int>(free[kind].back().size());
      total_free[kind] += n;
      if (n > 0) by_free[kind].insert({n, w});
    }
  }
  const auto largest_free = [&](DeviceKind kind) {
    return by_free[kind].empty() ? 0 : by_free[kind].rbegin()->first;
  };
  // Per kind: the priority of the first trial that could not be placed (blocks lower ones).
  std::map<DeviceKind, std::pair<int, std::string>> blocked;

  for (const PendingTrial& trial : pending) {
    const DeviceKind kind = ResolveDeviceKind(trial.device, cluster);
    auto block = blocked.find(kind);
    if (block != blocked.end() && block->second.first > trial.priority) {
      result.waiting[trial.id] =
          absl::StrCat("waiting behind higher-priority trial ", block->second.second);
      continue;
    }
    const int max_nodes = std::max(1, trial.max_nodes);
    std::vector<std::pair<size_t, int>> slices;
    // The short-cut: too few free devices of its kind anywhere, so no worker needs looking at.
    if (trial.devices <= total_free[kind] &&
        (max_nodes > 1 || trial.devices <= largest_free(kind))) {
      slices = ChooseSlices(workers, free[kind], by_free[kind], trial.devices, max_nodes);
    }
    const int port = slices.empty() ? -1 : FreePort(workers[slices.front().first]);
    if (slices.empty() || port < 0) {
      result.waiting[trial.id] =
          port < 0 && !slices.empty()
              ? absl::StrCat("no free rendezvous port on worker ",
                             workers[slices.front().first].id)
              : absl::StrCat("waiting for ", trial.devices, " free ", KindName(kind),
                             " device(s) on at most ", max_nodes,
                             " worker(s); most free on one worker: ", largest_free(kind));
      blocked.emplace(kind, std::make_pair(trial.priority, trial.id));
      continue;
    }
    v1::Placement placement;
    placement.set_device_kind(kind == DeviceKind::kGpu ? v1::DEVICE_KIND_GPU : v1::DEVICE_KIND_CPU);
    int rank = 0;
    for (const auto& [w, count] : slices) {
      WorkerSnapshot& worker = workers[w];
      std::vector<int>& worker_free = free[kind][w];
      by_free[kind].erase({static_cast<int>(worker_free.size()), w});
      if (static_cast<int>(worker_free.size()) > count) {
        by_free[kind].insert({static_cast<int>(worker_free.size()) - count, w});
      }
      v1::PlacementSlice* slice = placement.add_slices();
      slice->set_worker_id(worker.id);
      slice->set_first_rank(rank);
      for (int i = 0; i < count; ++i) {
        const int device = worker_free[i];
        slice->add_devices(device);
        (kind == DeviceKind::kGpu ? worker.busy_gpus : worker.busy_cpu_slots).insert(device);
      }
      worker_free.erase(worker_free.begin(), worker_free.begin() + count);
      total_free[kind] -= count;
      rank += count;
    }
    WorkerSnapshot& master = workers[slices.front().first];
    placement.set_master_addr(master.address);
    placement.set_master_port(port);
    master.busy_ports.insert(port);
    result.placements[trial.id] = std::move(placement);
  }
  return result;
}

int SliceOf(const v1::Placement& placement, const std::string& worker_id) {
  for (int i = 0; i < placement.slices_size(); ++i) {
    if (placement.slices(i).worker_id() == worker_id) return i;
  }
  return -1;
}

}  // namespace gauntlet
