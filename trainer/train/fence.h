#ifndef GAUNTLET_TRAINER_TRAIN_FENCE_H_
#define GAUNTLET_TRAINER_TRAIN_FENCE_H_

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace gauntlet {

// The trainer's side of the attempt fencing token (worker.proto, LaunchTrial.attempt). The worker
// writes the attempt that owns a trial's checkpoint directory into <run_dir>/fence before it
// starts that attempt's ranks; a trainer whose attempt is no longer the owner must stop without
// writing anything there again, so a run dir is never written by two attempts.
class Fence {
 public:
  // `attempt` 0 or an empty `path`: never fenced (a trainer run by hand, without a worker).
  Fence(std::string path, int attempt, std::chrono::milliseconds check_every);

  // A status tagged TRAINER_EXIT_FENCED once another attempt owns the directory. Re-reads the
  // file at most every `check_every` unless `force` (before a checkpoint is written).
  absl::Status Check(bool force = false);

 private:
  const std::string path_;
  const int attempt_;
  const std::chrono::milliseconds check_every_;
  std::chrono::steady_clock::time_point next_check_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_FENCE_H_
