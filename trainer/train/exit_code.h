#ifndef GAUNTLET_TRAINER_TRAIN_EXIT_CODE_H_
#define GAUNTLET_TRAINER_TRAIN_EXIT_CODE_H_

#include <exception>

#include "absl/status/status.h"
#include "gauntlet/v1/trainer.pb.h"

namespace gauntlet {

// The trainer's process exit codes, one per failure class. The values are v1::TrainerExitCode's
// (trainer.proto), the one definition the worker and coordinator read too.
enum class ExitCode : int {
  kOk = v1::TRAINER_EXIT_OK,
  kOther = v1::TRAINER_EXIT_OTHER,
  kBadSpec = v1::TRAINER_EXIT_BAD_SPEC,
  kBadData = v1::TRAINER_EXIT_BAD_DATA,
  kNonFinite = v1::TRAINER_EXIT_NON_FINITE,
  kOutOfMemory = v1::TRAINER_EXIT_OUT_OF_MEMORY,
  kDistributed = v1::TRAINER_EXIT_DISTRIBUTED,
  kFenced = v1::TRAINER_EXIT_FENCED,
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
