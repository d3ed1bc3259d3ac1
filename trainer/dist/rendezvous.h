#ifndef GAUNTLET_TRAINER_DIST_RENDEZVOUS_H_
#define GAUNTLET_TRAINER_DIST_RENDEZVOUS_H_

#include <chrono>
#include <memory>

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "trainer/dist/communicator.h"
#include "trainer/dist/dist_env.h"

namespace gauntlet {

// A rank's view of its gang: the rendezvous store and the communicator for its device.
struct ProcessGroup {
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Communicator> comm;
};

// Rendezvous through a c10d TCPStore served by rank 0 at MASTER_ADDR:MASTER_PORT (an in-process
// HashStore when world_size == 1), then the communicator: NCCL for a CUDA device (CUDA builds
// only), the store-based CPU communicator otherwise. Unavailable (exit code 6 upstream) when
// peers do not show up within `timeout`.
absl::StatusOr<ProcessGroup> Rendezvous(const DistEnv& env, const torch::Device& device,
                                        std::chrono::milliseconds timeout);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DIST_RENDEZVOUS_H_
