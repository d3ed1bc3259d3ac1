#ifndef GAUNTLET_SERVER_HEARTBEAT_RECONCILER_H_
#define GAUNTLET_SERVER_HEARTBEAT_RECONCILER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gauntlet/v1/worker.pb.h"
#include "server/trial_lifecycle.h"
#include "server/worker_registry.h"

namespace gauntlet {

// INVALID_ARGUMENT naming the first bad field of a worker's inventory.
absl::Status ValidateInventory(const v1::WorkerInventory& inventory);

// What a worker is told to run: its slice of the trial's current attempt.
v1::LaunchTrial LaunchOf(const v1::Trial& trial, int slice);

// Reconciles one heartbeat (already validated, stamped at `arrival` and recorded in `registry`)
// with the trials placed on its worker: processes the coordinator no longer wants are stopped,
// slices that started move their trial to RUNNING, placements the worker has not started yet are
// (re)sent as launches, and a gang the worker once ran but no longer lists is restarted. Only
// this worker's placements are visited, never every trial.
absl::StatusOr<v1::HeartbeatResponse> ReconcileHeartbeat(const v1::HeartbeatRequest& request,
                                                         absl::Time arrival,
                                                         WorkerRegistry& registry,
                                                         TrialLifecycle& lifecycle);

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_HEARTBEAT_RECONCILER_H_
