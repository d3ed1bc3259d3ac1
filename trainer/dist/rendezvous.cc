#include "trainer/dist/rendezvous.h"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/str_cat.h"
#include "trainer/dist/store_communicator.h"
#if GAUNTLET_CUDA
#include "trainer/dist/nccl_communicator.h"
#endif

namespace gauntlet {

absl::StatusOr<ProcessGroup> Rendezvous(const DistEnv& env, const torch::Device& device,
                                        std::chrono::milliseconds timeout) {
  ProcessGroup group;
  try {
    if (env.world_size == 1) {
      group.store = c10::make_intrusive<c10d::HashStore>();
    } else {
      c10d::TCPStoreOptions options;
      options.port = static_cast<std::uint16_t>(env.master_port);
      options.isServer = env.rank == 0;
      options.numWorkers = env.world_size;
      options.waitWorkers = true;
      options.timeout = timeout;
      group.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rendezvous at ", env.master_addr, ":",
                                               env.master_port, " (rank ", env.rank, " of ",
                                               env.world_size, "): ", e.what()));
  }
  if (device.is_cuda()) {
#if GAUNTLET_CUDA
    absl::StatusOr<std::unique_ptr<NcclCommunicator>> nccl =
        NcclCommunicator::Create(*group.store, env.rank, env.world_size, device.index());
    if (!nccl.ok()) return nccl.status();
    group.comm = *std::move(nccl);
    return group;
#else
    return absl::FailedPreconditionError("a CUDA device needs a --config=cuda build");
#endif
  }
  absl::StatusOr<std::unique_ptr<StoreCommunicator>> cpu =
      StoreCommunicator::Create(group.store, env.rank, env.world_size);
  if (!cpu.ok()) return cpu.status();
  group.comm = *std::move(cpu);
  return group;
}

}  // namespace gauntlet
