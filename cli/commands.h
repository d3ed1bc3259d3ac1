#ifndef GAUNTLET_CLI_COMMANDS_H_
#define GAUNTLET_CLI_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace gauntlet::cli {

// Everything the CLI takes from its surroundings, so tests can run it in-process.
struct CliContext {
  // --coordinator default: $GAUNTLET_COORDINATOR, else localhost:50051.
  std::string default_coordinator = "localhost:50051";
  // $GAUNTLET_TOKEN: sent as `authorization: Bearer <token>` when set.
  std::string token;
  // --tls_ca/--tls_cert/--tls_key defaults: $GAUNTLET_TLS_CA/_CERT/_KEY. A CA means TLS.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // Redraw progress in place (watch) only on a terminal; plain lines otherwise.
  bool stdout_is_tty = false;
  // cli/plot_curves.py and the interpreter that runs it (for compare --plot).
  std::string plot_script;
  std::string python = "python3";
  std::istream* in = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
};

// Runs `gauntlet <args...>` (args excludes the program name) and returns its exit code
// (cli/exit_codes.h).
int RunCli(const std::vector<std::string>& args, const CliContext& context);

// The text of `gauntlet help`.
std::string UsageText();

}  // namespace gauntlet::cli

#endif  // GAUNTLET_CLI_COMMANDS_H_
