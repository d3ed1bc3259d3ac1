#ifndef GAUNTLET_WORKER_PROCESS_LAUNCHER_H_
#define GAUNTLET_WORKER_PROCESS_LAUNCHER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet::worker {

struct ProcessOptions {
  // argv[0] is the executable's path (no $PATH lookup: the worker is told exact paths).
  std::vector<std::string> argv;
  // The complete environment, "KEY=VALUE" each.
  std::vector<std::string> env;
  std::string working_dir;
  // Appended to (created if missing), so a restarted rank keeps its earlier output.
  std::string stdout_path;
  std::string stderr_path;
};

// Starts and supervises child processes. Each child leads its own session and process group
// (setsid), so signalling the group reaches everything the trainer itself spawned, and gets
// SIGKILL when the launching thread's process dies (PR_SET_PDEATHSIG).
class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Returns the child's pid, which is also its process-group id. Fails (with the exec error)
  // when the program cannot be started.
  virtual absl::StatusOr<int> Launch(const ProcessOptions& options) = 0;
  // nullopt while running; once exited, the exit code, or 128+N when killed by signal N (the
  // shell's convention). Stable across repeated calls after exit.
  virtual std::optional<int> Poll(int pid) = 0;
  // Sends `signal` to the child's whole process group.
  virtual absl::Status SignalGroup(int pid, int signal) = 0;
};

// fork/exec implementation.
class PosixProcessLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<int> Launch(const ProcessOptions& options) override;
  std::optional<int> Poll(int pid) override;
  absl::Status SignalGroup(int pid, int signal) override;

 private:
  std::map<int, int> exited_;  // pid -> exit code, for children already reaped
};

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_PROCESS_LAUNCHER_H_
