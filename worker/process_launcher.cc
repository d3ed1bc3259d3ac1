#include "worker/process_launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace gauntlet::worker {
namespace {

// What the child reports through the exec pipe when it fails before exec.
struct ChildError {
  int step;  // index into kSteps
  int error;
};
constexpr const char* kSteps[] = {"setsid", "open stdout", "open stderr", "chdir", "exec"};

[[noreturn]] void ChildFail(int pipe_fd, int step) {
  ChildError e{step, errno};
  // Best effort: the parent treats a short read as "exec succeeded" only on EOF with 0 bytes.
  ssize_t ignored = write(pipe_fd, &e, sizeof(e));
  (void)ignored;
  _exit(127);
}

}  // namespace

absl::StatusOr<int> PosixProcessLauncher::Launch(const ProcessOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("ProcessOptions.argv is empty");
  // Everything the child touches is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> argv;
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* out_path = options.stdout_path.empty() ? "/dev/null" : options.stdout_path.c_str();
  const char* err_path = options.stderr_path.empty() ? "/dev/null" : options.stderr_path.c_str();
  const char* cwd = options.working_dir.empty() ? nullptr : options.working_dir.c_str();

  const pid_t parent = getpid();
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(exec_pipe[0]);
    close(exec_pipe[1]);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    close(exec_pipe[0]);
    // The worker may block termination signals for its own signal thread; a trainer must not
    // inherit that mask or it could never be stopped with SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    if (setsid() < 0) ChildFail(exec_pipe[1], 0);
    // The trainer dies with the worker: a killed agent must not leave it training (and writing
    // checkpoints) beside the next attempt. Kept across exec; checked once against the race
    // with a parent that died before prctl.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    const int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) ChildFail(exec_pipe[1], 1);
    const int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err < 0) ChildFail(exec_pipe[1], 2);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    const int null_in = open("/dev/null", O_RDONLY);
    if (null_in >= 0) dup2(null_in, STDIN_FILENO);
    if (cwd != nullptr && chdir(cwd) != 0) ChildFail(exec_pipe[1], 3);
    // Sockets and files of the worker (gRPC channels) must not leak into the trainer.
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(argv[0], argv.data(), envp.data());
    ChildFail(exec_pipe[1], 4);
  }
  close(exec_pipe[1]);
  ChildError child_error{};
  ssize_t n;
  do {
    n = read(exec_pipe[0], &child_error, sizeof(child_error));
  } while (n < 0 && errno == EINTR);
  close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_error))) {
    int status;
    waitpid(pid, &status, 0);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start ", options.argv[0], ": ", kSteps[child_error.step], " failed: ",
        std::strerror(child_error.error),
        child_error.step == 3 ? absl::StrCat(" (", options.working_dir, ")") : ""));
  }
  return pid;
}

std::optional<int> PosixProcessLauncher::Poll(int pid) {
  if (auto it = exited_.find(pid); it != exited_.end()) return it->second;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  int code;
  if (r < 0) {
    code = 255;  // not our child any more (ECHILD): treat as lost
  } else if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    code = 128 + WTERMSIG(status);
  } else {
    return std::nullopt;  // stopped/continued: still alive
  }
  exited_[pid] = code;
  return code;
}

absl::Status PosixProcessLauncher::SignalGroup(int pid, int signal) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("bad pid ", pid));
  if (kill(-pid, signal) != 0 && errno != ESRCH) {
    return absl::InternalError(
        absl::StrCat("kill(-", pid, ", ", signal, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace gauntlet::worker
