#ifndef GAUNTLET_TRAINER_DIST_NCCL_COMMUNICATOR_H_
#define GAUNTLET_TRAINER_DIST_NCCL_COMMUNICATOR_H_

// Only in CUDA builds (--config=cuda defines GAUNTLET_CUDA).
#if GAUNTLET_CUDA

#include <memory>

#include <c10/cuda/CUDAStream.h>
#include <nccl.h>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/dist/communicator.h"

namespace gauntlet {

// GPU collectives with the raw NCCL API. Chosen over c10d::ProcessGroupNCCL because the trainer
// needs only sum-all-reduce, broadcast and barrier on one dedicated stream: the raw API gives that
// stream and its events directly, without ProcessGroupNCCL's watchdog thread, work-tracking and
// option surface. The unique id travels through the same c10d store used for rendezvous.
//
// Collectives run on a separate high-priority stream: each waits (on the device) for an event
// recorded on the caller's current stream, and Work::Wait() makes the caller's current stream
// wait for the collective's completion event, so the host never blocks.
class NcclCommunicator : public Communicator {
 public:
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(c10d::Store& store, int rank,
                                                                   int world_size,
                                                                   int device_index);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::unique_ptr<Work> AllReduceSum(torch::Tensor tensor) override;
  absl::Status Broadcast(torch::Tensor tensor, int root) override;
  absl::Status Barrier() override;

 private:
  NcclCommunicator(ncclComm_t comm, int rank, int world_size, int device_index);

  ncclComm_t comm_;
  const int rank_;
  const int world_size_;
  const int device_index_;
  c10::cuda::CUDAStream stream_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_CUDA
#endif  // GAUNTLET_TRAINER_DIST_NCCL_COMMUNICATOR_H_
