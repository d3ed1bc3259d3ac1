#ifndef GAUNTLET_CLI_EXIT_CODES_H_
#define GAUNTLET_CLI_EXIT_CODES_H_

#include "absl/status/status.h"

namespace gauntlet::cli {

// Exit codes scripts can rely on (listed by `gauntlet help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitRpcError = 1,          // coordinator unreachable or any other server error
  kExitUsage = 2,             // bad command line
  kExitInvalidSpec = 3,       // INVALID_ARGUMENT: the spec (or a request field) is wrong
  kExitNotFound = 4,          // no such experiment or trial
  kExitExperimentFailed = 5,  // watch: the experiment ended FAILED or CANCELED
  kExitAlreadyExists = 6,     // an experiment with that name exists
  kExitFailedPrecondition = 7,  // e.g. cancel of a finished experiment
  kExitUnauthenticated = 8,   // missing or wrong GAUNTLET_TOKEN
};

// The exit code for a failed RPC.
int ExitCodeFor(const absl::Status& status);

// The table printed by `gauntlet help`.
const char* ExitCodeHelp();

}  // namespace gauntlet::cli

#endif  // GAUNTLET_CLI_EXIT_CODES_H_
