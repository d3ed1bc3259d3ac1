#ifndef GAUNTLET_TRAINER_TRAIN_EXIT_CODE_H_
#define GAUNTLET_TRAINER_TRAIN_EXIT_CODE_H_

#include <exception>

#include "absl/status/status.h"

namespace gauntlet {

// The trainer's process exit codes, one per failure class (v1::TrainerError.exit_code), so the
// worker and coordinator can tell a bad spec from a crashed peer without parsing text.
enum class ExitCode : int {
  kOk = 0,
  kOther = 1,
  kBadSpec = 2,
  kBadData = 3,
  kNonFinite = 4,
  kOutOfMemory = 5,
  kDistributed = 6,
};

// Tags `status` with the exit code it must end the process with (a status payload, so it
// survives being passed up unchanged). OK stays OK.
absl::Status WithExitCode(absl::Status status, ExitCode code);
// The tagged code; untagged errors are kOther; OK is kOk.
ExitCode ExitCodeOf(const absl::Status& status);

// Maps an exception that escaped LibTorch: CUDA out-of-memory -> kOutOfMemory, c10d's
// distributed errors -> kDistributed, anything else -> kOther. `where` prefixes the message.
absl::Status StatusFromException(const std::exception& e, const char* where);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_EXIT_CODE_H_
