#ifndef GAUNTLET_SERVER_SCHEDULER_H_
#define GAUNTLET_SERVER_SCHEDULER_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gauntlet/v1/coordinator.pb.h"

namespace gauntlet {

enum class DeviceKind { kGpu, kCpu };

// What the scheduler sees of one live worker.
struct WorkerSnapshot {
  std::string id;
  // Rendezvous address other ranks dial when this worker hosts rank 0.
  std::string address;
  std::vector<int> gpus;       // all GPU ordinals
  std::set<int> busy_gpus;     // ordinals held by live placements
  int cpu_slots = 0;           // slots 0..cpu_slots-1
  std::set<int> busy_cpu_slots;
  int rendezvous_port_base = 29500;
  std::set<int> busy_ports;    // master ports of live placements it hosts
};

struct ClusterSnapshot {
  // Only alive workers; sorted by id for deterministic results.
  std::vector<WorkerSnapshot> workers;
};

struct PendingTrial {
  std::string id;
  int priority = 0;
  // Submission order (lower first) for FIFO within a priority.
  int64_t sequence = 0;
  int devices = 1;
  int max_nodes = 1;
  // "gpu", "cpu" or "" (gpu when any registered worker has GPUs, else cpu).
  std::string device;
};

struct ScheduleResult {
  std::map<std::string, v1::Placement> placements;
  // Why each unplaced trial waits (becomes its status_message).
  std::map<std::string, std::string> waiting;
};

// Ports a worker hands out for rendezvous: [base, base + kRendezvousPortRange).
inline constexpr int kRendezvousPortRange = 1000;

// The resolved device kind of a trial's `device` field for this cluster.
DeviceKind ResolveDeviceKind(const std::string& device, const ClusterSnapshot& cluster);

// The index of `worker_id`'s slice in `placement`, or -1.
int SliceOf(const v1::Placement& placement, const std::string& worker_id);

// A pure function from the cluster and the pending trials to placements.
//
// Policy:
//  * Order: priority (higher first), then FIFO by sequence.
//  * Gang: a trial gets all its devices at once or nothing.
//  * Packing: a trial that fits on one worker goes to the worker with the fewest free devices of
//    its kind that still fits (best fit), leaving large holes for large gangs.
//  * Multi-node: otherwise it spans the fewest workers possible (largest free first, the last slice
//    best-fit), never more than max_nodes. Ranks are numbered slice by slice.
//  * Head-of-line: a waiting trial reserves its device kind against LOWER-priority trials (so they
//    cannot starve it), but trials of its own priority that fit may start before it (backfill).
//    GPU and CPU trials never block each other.
ScheduleResult Schedule(const ClusterSnapshot& cluster, std::vector<PendingTrial> pending);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_SCHEDULER_H_
