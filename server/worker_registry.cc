#include "server/worker_registry.h"

#include <algorithm>
#include <iostream>

namespace gauntlet {

bool WorkerRegistry::Heartbeat(const std::string& worker_id, const v1::WorkerInventory& inventory,
                               absl::Time arrival) {
  Worker& worker = workers_[worker_id];
  const bool grew = !worker.alive || !worker.has_inventory ||
                    worker.inventory.gpus_size() != inventory.gpus_size() ||
                    worker.inventory.cpu_slots() != inventory.cpu_slots();
  worker.inventory = inventory;
  if (worker.inventory.address().empty()) worker.inventory.set_address(inventory.hostname());
  // A heartbeat that queued behind others still counts from when it arrived.
  worker.last_heartbeat = std::max(worker.last_heartbeat, arrival);
  worker.alive = true;
  worker.has_inventory = true;
  if (grew) capacity_changed_ = true;
  return grew;
}

void WorkerRegistry::Expect(const std::string& worker_id, absl::Time now) {
  workers_[worker_id].last_heartbeat = now;
}

std::vector<std::string> WorkerRegistry::ExpireLeases(absl::Time now) {
  std::vector<std::string> lost;
  for (auto& [id, worker] : workers_) {
    if (!worker.alive || now - worker.last_heartbeat <= options_.lease) continue;
    worker.alive = false;
    std::cerr << "coordinator: worker " << id << " lost (no heartbeat for "
              << absl::FormatDuration(now - worker.last_heartbeat) << ")" << std::endl;
    lost.push_back(id);
  }
  return lost;
}

void WorkerRegistry::Deregister(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.alive = false;
}

void WorkerRegistry::Revive(const std::string& worker_id) { workers_[worker_id].alive = true; }

bool WorkerRegistry::Alive(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  return it != workers_.end() && it->second.alive;
}

const v1::WorkerInventory* WorkerRegistry::Inventory(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  return it == workers_.end() || !it->second.has_inventory ? nullptr : &it->second.inventory;
}

void WorkerRegistry::RecordLaunchFailure(const std::string& worker_id, absl::Time now) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  Worker& worker = it->second;
  if (++worker.consecutive_launch_failures >= options_.unhealthy_after_failures &&
      worker.unhealthy_until < now) {
    worker.unhealthy_until = now + options_.unhealthy_for;
    std::cerr << "coordinator: worker " << worker_id << " marked unhealthy after "
              << worker.consecutive_launch_failures
              << " failed launches in a row; no trials for "
              << absl::FormatDuration(options_.unhealthy_for) << std::endl;
  }
}

void WorkerRegistry::RecordLaunchSuccess(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  if (it->second.unhealthy_until != absl::InfinitePast()) capacity_changed_ = true;
  it->second.consecutive_launch_failures = 0;
  it->second.unhealthy_until = absl::InfinitePast();
}

void WorkerRegistry::Book(const std::string& trial_id, const v1::Placement& placement) {
  Release(trial_id);
  const bool cpu = placement.device_kind() == v1::DEVICE_KIND_CPU;
  for (int s = 0; s < placement.slices_size(); ++s) {
    const v1::PlacementSlice& slice = placement.slices(s);
    Worker& worker = workers_[slice.worker_id()];
    for (int device : slice.devices()) (cpu ? worker.busy_cpu_slots : worker.busy_gpus).insert(device);
    if (s == 0) worker.busy_ports.insert(placement.master_port());
    worker.trials.insert(trial_id);
  }
  bookings_[trial_id] = placement;
}

bool WorkerRegistry::CanBook(const v1::Placement& placement, absl::Time now) const {
  const bool cpu = placement.device_kind() == v1::DEVICE_KIND_CPU;
  for (int s = 0; s < placement.slices_size(); ++s) {
    const v1::PlacementSlice& slice = placement.slices(s);
    auto it = workers_.find(slice.worker_id());
    if (it == workers_.end() || !Schedulable(it->second, now)) return false;
    const Worker& worker = it->second;
    const int count = cpu ? worker.inventory.cpu_slots() : worker.inventory.gpus_size();
    for (int device : slice.devices()) {
      const bool exists = cpu ? device < count
                              : std::any_of(worker.inventory.gpus().begin(),
                                            worker.inventory.gpus().end(),
                                            [&](const v1::GpuInfo& g) { return g.index() == device; });
      if (!exists || (cpu ? worker.busy_cpu_slots : worker.busy_gpus).count(device)) return false;
    }
    if (s == 0 && worker.busy_ports.count(placement.master_port())) return false;
  }
  return true;
}

void WorkerRegistry::Release(const std::string& trial_id) {
  auto it = bookings_.find(trial_id);
  if (it == bookings_.end()) return;
  const v1::Placement& placement = it->second;
  const bool cpu = placement.device_kind() == v1::DEVICE_KIND_CPU;
  for (int s = 0; s < placement.slices_size(); ++s) {
    const v1::PlacementSlice& slice = placement.slices(s);
    auto w = workers_.find(slice.worker_id());
    if (w == workers_.end()) continue;
    Worker& worker = w->second;
    for (int device : slice.devices()) (cpu ? worker.busy_cpu_slots : worker.busy_gpus).erase(device);
    if (s == 0) worker.busy_ports.erase(placement.master_port());
    worker.trials.erase(trial_id);
  }
  bookings_.erase(it);
  capacity_changed_ = true;
}

std::vector<std::string> WorkerRegistry::TrialsOn(const std::string& worker_id) const {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return {};
  return {it->second.trials.begin(), it->second.trials.end()};
}

bool WorkerRegistry::Schedulable(const Worker& worker, absl::Time now) const {
  return worker.alive && worker.has_inventory && worker.unhealthy_until < now;
}

ClusterSnapshot WorkerRegistry::Snapshot(absl::Time now) const {
  ClusterSnapshot cluster;
  for (const auto& [id, worker] : workers_) {
    if (!Schedulable(worker, now)) continue;
    WorkerSnapshot& w = cluster.workers.emplace_back();
    w.id = id;
    w.address = worker.inventory.address();
    for (const v1::GpuInfo& gpu : worker.inventory.gpus()) w.gpus.push_back(gpu.index());
    w.cpu_slots = worker.inventory.cpu_slots();
    w.rendezvous_port_base = worker.inventory.rendezvous_port_base();
    w.busy_gpus = worker.busy_gpus;
    w.busy_cpu_slots = worker.busy_cpu_slots;
    w.busy_ports = worker.busy_ports;
  }
  return cluster;
}

bool WorkerRegistry::HasFreeDevices(absl::Time now) const {
  for (const auto& [id, worker] : workers_) {
    if (!Schedulable(worker, now)) continue;
    if (worker.inventory.gpus_size() > static_cast<int>(worker.busy_gpus.size()) ||
        worker.inventory.cpu_slots() > static_cast<int>(worker.busy_cpu_slots.size())) {
      return true;
    }
  }
  return false;
}

WorkerRegistry::Counts WorkerRegistry::GetCounts(absl::Time now) const {
  Counts counts;
  for (const auto& [id, worker] : workers_) {
    if (!worker.alive) {
      ++counts.lost;
      continue;
    }
    ++counts.alive;
    if (worker.unhealthy_until >= now) ++counts.unhealthy;
    const int gpus = worker.inventory.gpus_size(), cpus = worker.inventory.cpu_slots();
    counts.gpu_busy += worker.busy_gpus.size();
    counts.gpu_free += std::max(0, gpus - static_cast<int>(worker.busy_gpus.size()));
    counts.cpu_busy += worker.busy_cpu_slots.size();
    counts.cpu_free += std::max(0, cpus - static_cast<int>(worker.busy_cpu_slots.size()));
  }
  return counts;
}

absl::Status WorkerRegistry::CheckFits(const std::vector<v1::Trial>& trials,
                                       absl::Time now) const {
  const ClusterSnapshot cluster = Snapshot(now);
  if (cluster.workers.empty()) return absl::OkStatus();
  for (const v1::Trial& trial : trials) {
    const DeviceKind kind = ResolveDeviceKind(trial.spec().resources().device(), cluster);
    int largest = 0;
    for (const WorkerSnapshot& w : cluster.workers) {
      largest = std::max(largest, kind == DeviceKind::kGpu ? static_cast<int>(w.gpus.size())
                                                           : w.cpu_slots);
    }
    const auto& resources = trial.spec().resources();
    if (resources.gpus_per_trial() > resources.max_nodes() * largest) {
      return absl::InvalidArgumentError(absl::StrCat(
          "resources.gpus_per_trial: variant '", trial.variant(), "' needs ",
          resources.gpus_per_trial(), " ", kind == DeviceKind::kGpu ? "gpu" : "cpu",
          " devices but can get at most ", resources.max_nodes() * largest, " (max_nodes ",
          resources.max_nodes(), " x largest registered worker's ", largest, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace gauntlet
