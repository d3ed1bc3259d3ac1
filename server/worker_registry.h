#ifndef GAUNTLET_SERVER_WORKER_REGISTRY_H_
#define GAUNTLET_SERVER_WORKER_REGISTRY_H_

#include <map>
#include <utility>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gauntlet/v1/coordinator.pb.h"
#include "gauntlet/v1/worker.pb.h"
#include "server/scheduler.h"

namespace gauntlet {

struct WorkerRegistryOptions {
  // A worker whose last heartbeat is older than this is lost.
  absl::Duration lease = absl::Seconds(15);
  // Consecutive launch failures after which a worker gets no trials for `unhealthy_for`.
  int unhealthy_after_failures = 3;
  absl::Duration unhealthy_for = absl::Minutes(5);
};

// Workers, their leases and health, and which of their devices live placements hold. Bookings
// are kept incrementally (Book/Release when a placement starts or ends), so a snapshot costs
// O(workers), never O(trials ever submitted). Not thread-safe: its owner serializes calls.
class WorkerRegistry {
 public:
  explicit WorkerRegistry(WorkerRegistryOptions options) : options_(options) {}

  // A heartbeat that arrived at `arrival`. True when the worker's capacity may have grown (new,
  // back from lost, or a changed inventory): a reason to run the scheduler.
  bool Heartbeat(const std::string& worker_id, const v1::WorkerInventory& inventory,
                 absl::Time arrival);
  // Recovery: a worker named by a live placement gets a lease from `now` (no inventory yet).
  void Expect(const std::string& worker_id, absl::Time now);
  // Marks lost, and returns, every alive worker whose lease ran out at `now`.
  std::vector<std::string> ExpireLeases(absl::Time now);
  // The worker said it is going away: lost now, without waiting for its lease.
  void Deregister(const std::string& worker_id);
  // Undoes a loss that could not be acted on (the store refused the requeue): retried next tick.
  void Revive(const std::string& worker_id);
  bool Alive(const std::string& worker_id) const;
  // The last inventory the worker sent, or null.
  const v1::WorkerInventory* Inventory(const std::string& worker_id) const;

  // A launch on this worker failed (its work dir, its trainer): after enough in a row it is
  // unhealthy and gets nothing until `unhealthy_for` passed. A gang that started resets it.
  void RecordLaunchFailure(const std::string& worker_id, absl::Time now);
  void RecordLaunchSuccess(const std::string& worker_id);

  // Whether `placement` can still be booked at `now`: every worker schedulable, every device
  // there and free, the port free. (A pass decided outside the lock re-checks its result.)
  bool CanBook(const v1::Placement& placement, absl::Time now) const;
  // Devices and rendezvous port of a live placement; Release frees them (idempotent).
  void Book(const std::string& trial_id, const v1::Placement& placement);
  void Release(const std::string& trial_id);
  // Trials whose live placement includes `worker_id`.
  std::vector<std::string> TrialsOn(const std::string& worker_id) const;

  // INVALID_ARGUMENT naming the variant when a trial's gang is larger than the registered
  // cluster could ever hold (max_nodes x the largest worker), so it is refused now instead of
  // queued forever. OK while no worker has registered.
  absl::Status CheckFits(const std::vector<v1::Trial>& trials, absl::Time now) const;

  // Whether some schedulable worker has a free GPU or CPU slot (O(workers), no copies): a
  // scheduling pass with nothing free can place nothing.
  bool HasFreeDevices(absl::Time now) const;

  // Alive, healthy workers with an inventory, sorted by id, with their bookings.
  ClusterSnapshot Snapshot(absl::Time now) const;
  // True (once) when capacity may have grown since the last call (a worker joined or came back,
  // a booking was released): a reason to run the scheduler.
  bool TakeCapacityChanged() { return std::exchange(capacity_changed_, false); }

  struct Counts {
    int alive = 0, lost = 0, unhealthy = 0;
    int gpu_free = 0, gpu_busy = 0, cpu_free = 0, cpu_busy = 0;
  };
  Counts GetCounts(absl::Time now) const;
  const WorkerRegistryOptions& options() const { return options_; }

 private:
  struct Worker {
    v1::WorkerInventory inventory;
    absl::Time last_heartbeat;
    bool alive = true;
    // False for placeholders made by Expect until the worker heartbeats.
    bool has_inventory = false;
    int consecutive_launch_failures = 0;
    absl::Time unhealthy_until = absl::InfinitePast();
    std::set<int> busy_gpus, busy_cpu_slots, busy_ports;
    std::set<std::string> trials;
  };
  bool Schedulable(const Worker& worker, absl::Time now) const;

  const WorkerRegistryOptions options_;
  std::map<std::string, Worker> workers_;
  std::map<std::string, v1::Placement> bookings_;
  bool capacity_changed_ = false;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WORKER_REGISTRY_H_
