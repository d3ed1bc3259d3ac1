#ifndef GAUNTLET_TRAINER_TRAIN_TRAIN_LOOP_H_
#define GAUNTLET_TRAINER_TRAIN_TRAIN_LOOP_H_

#include <ostream>
#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "trainer/dist/communicator.h"
#include "common/clock.h"
#include "trainer/train/event_writer.h"

namespace gauntlet {

struct TrainerOptions {
  v1::TrialSpec spec;  // resolved (defaults applied)
  torch::Device device = torch::kCPU;
  // Reduce gradients through the bucketer even at world size 1 (exercises NCCL on one GPU).
  bool force_ddp = false;
  // > 0: profile this many steps, starting 20 steps in (after the CUDA graph capture), and
  // print per-kernel device time to the log (rank 0).
  int profile_steps = 0;
  std::string trial_id;  // copied into MetricPoint.trial_id
  // The fencing token (GAUNTLET_ATTEMPT): the trainer stops, writing nothing, once another
  // attempt owns spec.run_dir (fence.h). 0: not run by a worker, never fenced.
  int attempt = 0;
};

// Where rank 0 reports; both null on other ranks.
struct TrainerSinks {
  std::ostream* log = nullptr;
  EventWriter* events = nullptr;
};

// Trains one trial to its budget on this rank, resuming from the newest checkpoint in
// spec.run_dir/checkpoints when there is one. Errors carry their ExitCode (exit_code.h).
absl::StatusOr<v1::TrainerSummary> RunTraining(const TrainerOptions& options, Communicator& comm,
                                               const Clock& clock, const TrainerSinks& sinks);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_TRAIN_LOOP_H_
