// `gauntlet`: the command-line client of the Gauntlet coordinator.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

bool Readable(const std::string& path) { return !path.empty() && access(path.c_str(), R_OK) == 0; }

// plot_curves.py ships beside the binary: in Bazel runfiles, or installed next to it.
std::string FindPlotScript(const char* argv0) {
  if (std::string env = Env("GAUNTLET_PLOT_SCRIPT"); !env.empty()) return env;
  std::vector<std::string> candidates;
  if (std::string runfiles = Env("RUNFILES_DIR"); !runfiles.empty()) {
    candidates.push_back(runfiles + "/gauntlet/cli/plot_curves.py");
  }
  char exe[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  for (std::string binary : {std::string(argv0), n > 0 ? std::string(exe, n) : std::string()}) {
    if (binary.empty()) continue;
    const std::string dir = binary.substr(0, binary.find_last_of('/') + 1);
    candidates.push_back(binary + ".runfiles/gauntlet/cli/plot_curves.py");
    candidates.push_back(dir + "plot_curves.py");
    candidates.push_back(dir + "../share/gauntlet/plot_curves.py");
  }
  for (const std::string& c : candidates) {
    if (Readable(c)) return c;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  gauntlet::cli::CliContext context;
  if (std::string address = Env("GAUNTLET_COORDINATOR"); !address.empty()) {
    context.default_coordinator = address;
  }
  context.token = Env("GAUNTLET_TOKEN");
  context.tls_ca = Env("GAUNTLET_TLS_CA");
  context.tls_cert = Env("GAUNTLET_TLS_CERT");
  context.tls_key = Env("GAUNTLET_TLS_KEY");
  context.stdout_is_tty = isatty(STDOUT_FILENO) == 1;
  context.plot_script = FindPlotScript(argv[0]);
  if (std::string python = Env("GAUNTLET_PYTHON"); !python.empty()) context.python = python;
  context.in = &std::cin;
  context.out = &std::cout;
  context.err = &std::cerr;
  return gauntlet::cli::RunCli(std::vector<std::string>(argv + 1, argv + argc), context);
}
