#ifndef GAUNTLET_TRAINER_DIST_COMMUNICATOR_H_
#define GAUNTLET_TRAINER_DIST_COMMUNICATOR_H_

#include <memory>

#include <torch/torch.h>

#include "absl/status/status.h"

namespace gauntlet {

// A collective in flight. Wait() returns once the result may be used on the caller's stream: on
// CPU the data is final; on CUDA the caller's current stream is ordered after the collective, so
// the host does not block.
class Work {
 public:
  virtual ~Work() = default;
  virtual absl::Status Wait() = 0;
};

// The data-parallel seam: the gradient bucketer and the training loop see only this, so the same
// code runs on CPU (store-based) and on GPUs (NCCL). Every rank must issue the same collectives
// in the same order, as with any collective library.
class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Sums `tensor` (contiguous, on this communicator's device) across ranks, in place. Every rank
  // ends with bit-identical values.
  virtual std::unique_ptr<Work> AllReduceSum(torch::Tensor tensor) = 0;

  // Copies `tensor` from rank `root` to every rank, in place.
  virtual absl::Status Broadcast(torch::Tensor tensor, int root) = 0;

  // Returns once every rank has called it.
  virtual absl::Status Barrier() = 0;

  // Called once by each rank after its last collective, before the process exits: keeps shared
  // infrastructure (the rank-0-hosted store) up until every rank is through.
  virtual absl::Status Finish() { return absl::OkStatus(); }
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DIST_COMMUNICATOR_H_
