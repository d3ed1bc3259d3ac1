#include "cli/exit_codes.h"

namespace gauntlet::cli {

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitInvalidSpec;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kAlreadyExists:
      return kExitAlreadyExists;
    case absl::StatusCode::kFailedPrecondition:
      return kExitFailedPrecondition;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitUnauthenticated;
    default:
      return kExitRpcError;
  }
}

const char* ExitCodeHelp() {
  return "Exit codes:\n"
         "  0  ok\n"
         "  1  RPC or server error (coordinator unreachable, internal error)\n"
         "  2  usage error (bad command line)\n"
         "  3  invalid spec or argument (INVALID_ARGUMENT; the message names field, line, column)\n"
         "  4  experiment or trial not found\n"
         "  5  watch: the experiment finished FAILED or CANCELED\n"
         "  6  an experiment with that name already exists\n"
         "  7  failed precondition (e.g. cancel of a finished experiment)\n"
         "  8  unauthenticated (set GAUNTLET_TOKEN)\n";
}

}  // namespace gauntlet::cli
