#ifndef GAUNTLET_TRAINER_DIST_DIST_ENV_H_
#define GAUNTLET_TRAINER_DIST_DIST_ENV_H_

// Torch-free: the torchrun-style environment a trainer process is started with.

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace gauntlet {

struct DistEnv {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: not given (allowed only when world_size == 1)
};

// Reads RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT through `getenv` (injectable for
// tests; returns nullopt for unset). All unset means a single-process run. InvalidArgument naming
// the variable for malformed or inconsistent values.
absl::StatusOr<DistEnv> DistEnvFrom(
    const std::function<std::optional<std::string>(const std::string&)>& getenv);
absl::StatusOr<DistEnv> DistEnvFromProcess();

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DIST_DIST_ENV_H_
