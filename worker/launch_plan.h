#ifndef GAUNTLET_WORKER_LAUNCH_PLAN_H_
#define GAUNTLET_WORKER_LAUNCH_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gauntlet/v1/worker.pb.h"
#include "worker/process_launcher.h"

namespace gauntlet::worker {

struct LaunchConfig {
  std::string work_dir;
  std::string trainer_path;
  // Relative data paths resolve here; empty leaves them relative to the worker's cwd.
  std::string data_root;
  // Absolute data paths must lie under data_root or one of these (e.g. /usr/src for a kernel
  // tarball); a spec naming anything else is refused.
  std::vector<std::string> extra_data_roots;
  // An absolute data.cache_dir must lie under work_dir or one of these.
  std::vector<std::string> cache_roots;
  // Checkpoints live in <checkpoint_store>/<trial>; empty: <work_dir>/checkpoints (local).
  std::string checkpoint_store;
  // The worker's own environment ("KEY=VALUE"); trainers inherit it plus the rank variables.
  std::vector<std::string> base_env;
  // OMP_NUM_THREADS for CPU ranks (0: leave unset). Several CPU trials share the host's cores;
  // without a cap each LibTorch process starts one thread per core and they thrash.
  int threads_per_cpu_rank = 0;
};

struct RankPlan {
  int rank = 0;
  int local_rank = 0;
  // GPU ordinal or CPU slot number from the placement.
  int device = 0;
  // work_dir/<trial>/attempt-<n>/rank-<r>
  std::string dir;
  ProcessOptions process;
};

// Everything needed to start this worker's share of one trial attempt, computed without side
// effects so it can be checked in isolation.
struct GangPlan {
  std::string trial_id;
  int attempt = 0;
  // work_dir/<trial>: this worker's files of the trial (spec, attempt dirs with logs).
  std::string run_dir;
  std::string attempt_dir;
  // run_dir/trial.yaml
  std::string spec_path;
  // <checkpoint store>/<trial>: the trainer's run_dir, shared by every attempt so a restart
  // resumes from its checkpoints.
  std::string checkpoint_dir;
  // checkpoint_dir/fence: the attempt that owns checkpoint_dir (see LaunchTrial.attempt).
  std::string fence_path;
  // The spec as the trainer must see it: run_dir = checkpoint_dir, data.path absolute,
  // resources.device the placement's device kind.
  v1::TrialSpec spec;
  // Where rank 0 appends TrainerEvent JSON lines; empty when this worker does not host rank 0.
  std::string events_path;
  std::vector<RankPlan> ranks;
};

// Validates a LaunchTrial action (errors name the field) and plans the processes.
absl::StatusOr<GangPlan> PlanLaunch(const v1::LaunchTrial& launch, const LaunchConfig& config);

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_LAUNCH_PLAN_H_
