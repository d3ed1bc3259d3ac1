#include "worker/process_launcher.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gauntlet::worker {
namespace {

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits for a real child; these tests exercise real processes, so they must wait for them.
std::optional<int> WaitExit(ProcessLauncher& launcher, int pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (auto code = launcher.Poll(pid)) return code;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return std::nullopt;
}

// Waits until `path` has content: the child's signal that it is ready.
bool WaitForFile(const std::string& path) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (!Read(path).empty()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

ProcessOptions Shell(const std::string& script, const std::string& name) {
  ProcessOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.env = {"PATH=/usr/bin:/bin", "RANK=3"};
  options.working_dir = TmpDir();
  options.stdout_path = TmpDir() + "/" + name + ".out";
  options.stderr_path = TmpDir() + "/" + name + ".err";
  return options;
}

TEST(PosixProcessLauncherTest, ReportsExitCodeAndCapturesOutput) {
  PosixProcessLauncher launcher;
  auto pid = launcher.Launch(
      Shell("echo \"rank $RANK in $(pwd)\"; echo oops >&2; exit 3", "exit3"));
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitExit(launcher, *pid, absl::Seconds(10)), 3);
  EXPECT_EQ(launcher.Poll(*pid), 3);  // stable once reaped
  EXPECT_EQ(Read(TmpDir() + "/exit3.out"), "rank 3 in " + TmpDir() + "\n");
  EXPECT_EQ(Read(TmpDir() + "/exit3.err"), "oops\n");
}

TEST(PosixProcessLauncherTest, ChildLeadsItsOwnProcessGroup) {
  PosixProcessLauncher launcher;
  // Field 5 of /proc/PID/stat is the process group, field 6 the session.
  auto pid = launcher.Launch(Shell("cut -d' ' -f5,6 /proc/$$/stat; echo $$", "pgrp"));
  ASSERT_TRUE(pid.ok());
  ASSERT_EQ(WaitExit(launcher, *pid, absl::Seconds(10)), 0);
  const std::string expected = std::to_string(*pid);
  EXPECT_EQ(Read(TmpDir() + "/pgrp.out"), expected + " " + expected + "\n" + expected + "\n");
}

TEST(PosixProcessLauncherTest, SigtermReachesTheWholeGroup) {
  PosixProcessLauncher launcher;
  const std::string ready = TmpDir() + "/term.ready";
  // A grandchild in the same group: the signal must reach it too, or the sh would wait forever.
  auto pid = launcher.Launch(Shell("sleep 30 & echo up > " + ready + "; wait", "term"));
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(WaitForFile(ready));
  ASSERT_TRUE(launcher.SignalGroup(*pid, SIGTERM).ok());
  EXPECT_EQ(WaitExit(launcher, *pid, absl::Seconds(10)), 128 + SIGTERM);
}

TEST(PosixProcessLauncherTest, SigkillStopsAProcessIgnoringSigterm) {
  PosixProcessLauncher launcher;
  const std::string ready = TmpDir() + "/stubborn.ready";
  auto pid = launcher.Launch(
      Shell("trap '' TERM; echo up > " + ready + "; while :; do sleep 0.05; done", "stubborn"));
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(WaitForFile(ready));
  ASSERT_TRUE(launcher.SignalGroup(*pid, SIGTERM).ok());
  EXPECT_EQ(WaitExit(launcher, *pid, absl::Milliseconds(300)), std::nullopt);
  ASSERT_TRUE(launcher.SignalGroup(*pid, SIGKILL).ok());
  EXPECT_EQ(WaitExit(launcher, *pid, absl::Seconds(10)), 128 + SIGKILL);
}

TEST(PosixProcessLauncherTest, SignalsBlockedInTheWorkerAreUnblockedInTheChild) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  PosixProcessLauncher launcher;
  const std::string ready = TmpDir() + "/masked.ready";
  auto pid = launcher.Launch(Shell("echo up > " + ready + "; sleep 30", "masked"));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(WaitForFile(ready));
  ASSERT_TRUE(launcher.SignalGroup(*pid, SIGTERM).ok());
  EXPECT_EQ(WaitExit(launcher, *pid, absl::Seconds(10)), 128 + SIGTERM);
}

TEST(PosixProcessLauncherTest, MissingProgramIsALaunchError) {
  PosixProcessLauncher launcher;
  ProcessOptions options = Shell("", "missing");
  options.argv = {"/nonexistent/trainer", "--spec", "x.yaml"};
  auto pid = launcher.Launch(options);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("/nonexistent/trainer"), std::string::npos);
  EXPECT_NE(pid.status().message().find("exec"), std::string::npos) << pid.status();
}

TEST(PosixProcessLauncherTest, MissingWorkingDirIsALaunchError) {
  PosixProcessLauncher launcher;
  ProcessOptions options = Shell("exit 0", "nodir");
  options.working_dir = TmpDir() + "/does/not/exist";
  auto pid = launcher.Launch(options);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.status().message().find("chdir"), std::string::npos) << pid.status();
}

}  // namespace
}  // namespace gauntlet::worker
