#include "cli/commands.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/exit_codes.h"
#include "common/grpc_status.h"
#include "common/tls_credentials.h"
#include "cli/format.h"
#include "gauntlet/v1/coordinator.grpc.pb.h"

extern char** environ;

namespace gauntlet::cli {
namespace {

constexpr absl::Duration kUnaryTimeout = absl::Seconds(30);

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  bool Has(const std::string& f) const { return flags.count(f) > 0; }
  std::string Value(const std::string& name, std::string fallback = "") const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
};

// Parses `--name value`, `--name=value` and boolean `--name`. Short aliases map to long names.
absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& args,
                               const std::set<std::string>& value_flags,
                               const std::set<std::string>& bool_flags,
                               const std::map<std::string, std::string>& aliases = {}) {
  Args parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (auto it = aliases.find(arg); it != aliases.end()) arg = it->second;
    if (arg == "-" || !absl::StartsWith(arg, "-")) {
      parsed.positional.push_back(arg);
      continue;
    }
    std::string name = std::string(absl::StripPrefix(absl::StripPrefix(arg, "-"), "-"));
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (bool_flags.count(name)) {
      if (value.has_value()) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      parsed.flags.insert(name);
    } else if (value_flags.count(name)) {
      if (!value.has_value()) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        value = args[++i];
      }
      parsed.values[name] = *value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", args[i]));
    }
  }
  return parsed;
}

class Session {
 public:
  Session(const CliContext& context, const std::string& address,
          std::shared_ptr<grpc::ChannelCredentials> credentials, bool tls)
      : context_(context),
        stub_(v1::Coordinator::NewStub(grpc::CreateChannel(address, std::move(credentials)))),
        address_(address),
        tls_(tls) {}

  std::ostream& out() { return *context_.out; }
  std::ostream& err() { return *context_.err; }
  const CliContext& context() const { return context_; }
  v1::Coordinator::Stub& stub() { return *stub_; }

  void Prepare(grpc::ClientContext* c, bool unary = true) {
    if (unary) c->set_deadline(absl::ToChronoTime(absl::Now() + kUnaryTimeout));
    if (!context_.token.empty()) c->AddMetadata("authorization", "Bearer " + context_.token);
  }

  // Prints the error the way a user can act on it and returns its exit code.
  int Fail(const absl::Status& status) {
    switch (status.code()) {
      case absl::StatusCode::kInvalidArgument:
        err() << "gauntlet: invalid: " << status.message() << "\n";
        break;
      case absl::StatusCode::kNotFound:
        err() << "gauntlet: not found: " << status.message() << "\n";
        break;
      case absl::StatusCode::kUnavailable:
        // A TLS mismatch shows up as UNAVAILABLE too; say which side of it we are on.
        err() << "gauntlet: coordinator " << address_ << " unavailable: " << status.message()
              << (tls_ ? "\n(connecting over TLS: check that --tls_ca signed the coordinator's "
                         "certificate and that it names this host)\n"
                       : "\n(connecting in plaintext: if the coordinator serves TLS, pass "
                         "--tls_ca)\n");
        break;
      default:
        err() << "gauntlet: " << absl::StatusCodeToString(status.code()) << ": "
              << status.message() << "\n";
    }
    return ExitCodeFor(status);
  }

 private:
  const CliContext& context_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  std::string address_;
  bool tls_;
};

int Usage(const CliContext& c, const std::string& message) {
  *c.err << "gauntlet: " << message << "\nRun `gauntlet help` for usage.\n";
  return kExitUsage;
}

int Submit(Session& s, const Args& args) {
  if (args.positional.size() != 1) return Usage(s.context(), "submit needs one FILE (or - for stdin)");
  std::string yaml;
  const std::string& file = args.positional[0];
  if (file == "-") {
    std::stringstream buffer;
    buffer << s.context().in->rdbuf();
    yaml = buffer.str();
  } else {
    std::ifstream in(file);
    if (!in) return Usage(s.context(), absl::StrCat("cannot read ", file));
    std::stringstream buffer;
    buffer << in.rdbuf();
    yaml = buffer.str();
  }
  v1::SubmitExperimentRequest request;
  request.set_spec_yaml(yaml);
  request.set_dry_run(args.Has("dry-run"));
  v1::SubmitExperimentResponse response;
  grpc::ClientContext context;
  s.Prepare(&context);
  grpc::Status status = s.stub().SubmitExperiment(&context, request, &response);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      s.err() << "gauntlet: invalid spec " << file << ": " << status.error_message() << "\n";
      return kExitInvalidSpec;
    }
    return s.Fail(FromGrpcStatus(status));
  }
  const v1::Experiment& e = response.experiment();
  if (args.Has("dry-run")) {
    s.out() << "spec is valid: " << e.trials_size() << " trials\n";
    for (const auto& t : e.trials()) s.out() << "  " << t.variant() << " seed " << t.seed() << "\n";
  } else {
    s.out() << e.id() << "  " << e.spec().name() << "  " << e.trials_size() << " trials\n";
  }
  return kExitOk;
}

int List(Session& s, const Args& args) {
  v1::ListExperimentsRequest request;
  request.set_name_prefix(args.Value("prefix"));
  if (args.values.count("state")) {
    for (absl::string_view name : absl::StrSplit(args.Value("state"), ',')) {
      v1::ExperimentState state;
      if (!v1::ExperimentState_Parse(
              absl::StrCat("EXPERIMENT_STATE_", absl::AsciiStrToUpper(name)), &state)) {
        return Usage(s.context(), absl::StrCat("--state: unknown state '", name, "'"));
      }
      request.add_states(state);
    }
  }
  v1::ListExperimentsResponse all;
  do {
    v1::ListExperimentsResponse page;
    grpc::ClientContext context;
    s.Prepare(&context);
    grpc::Status status = s.stub().ListExperiments(&context, request, &page);
    if (!status.ok()) return s.Fail(FromGrpcStatus(status));
    for (auto& e : *page.mutable_experiments()) *all.add_experiments() = std::move(e);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  s.out() << FormatExperimentList(all);
  return kExitOk;
}

// The whole experiment, page by page: each response stays small however many trials it has.
absl::StatusOr<v1::Experiment> GetExperiment(Session& s, const std::string& id) {
  v1::GetExperimentRequest request;
  request.set_experiment(id);
  v1::Experiment experiment;
  do {
    v1::Experiment page;
    grpc::ClientContext context;
    s.Prepare(&context);
    grpc::Status status = s.stub().GetExperiment(&context, request, &page);
    if (!status.ok()) return FromGrpcStatus(status);
    // Later pages of the same experiment are asked for by id: a name could be reused meanwhile.
    request.set_experiment(page.id());
    request.set_trial_page_token(page.next_trial_page_token());
    if (experiment.id().empty()) {
      experiment = std::move(page);
    } else {
      for (v1::Trial& trial : *page.mutable_trials()) *experiment.add_trials() = std::move(trial);
    }
  } while (!request.trial_page_token().empty());
  experiment.clear_next_trial_page_token();
  return experiment;
}

int Describe(Session& s, const Args& args) {
  if (args.positional.size() != 1) return Usage(s.context(), "describe needs one EXPERIMENT");
  absl::StatusOr<v1::Experiment> e = GetExperiment(s, args.positional[0]);
  if (!e.ok()) return s.Fail(e.status());
  s.out() << FormatExperiment(*e);
  return kExitOk;
}

int Cancel(Session& s, const Args& args) {
  if (args.positional.size() != 1) return Usage(s.context(), "cancel needs one EXPERIMENT");
  v1::CancelExperimentRequest request;
  request.set_experiment(args.positional[0]);
  request.set_reason(args.Value("reason", "canceled from the CLI"));
  v1::Experiment experiment;
  grpc::ClientContext context;
  s.Prepare(&context);
  grpc::Status status = s.stub().CancelExperiment(&context, request, &experiment);
  if (!status.ok()) return s.Fail(FromGrpcStatus(status));
  s.out() << experiment.id() << "  " << StateName(experiment.state()) << "\n";
  return kExitOk;
}

int Logs(Session& s, const Args& args) {
  if (args.positional.size() != 1) return Usage(s.context(), "logs needs one TRIAL");
  v1::StreamTrialLogsRequest request;
  request.set_trial_id(args.positional[0]);
  request.set_follow(args.Has("follow"));
  for (const char* name : {"rank", "tail"}) {
    if (!args.values.count(name)) continue;
    int value = 0;
    if (!absl::SimpleAtoi(args.Value(name), &value) || value < 0) {
      return Usage(s.context(), absl::StrCat("--", name, " must be a non-negative integer"));
    }
    std::string(name) == "rank" ? request.set_rank(value) : request.set_tail_lines(value);
  }
  grpc::ClientContext context;
  s.Prepare(&context, /*unary=*/false);
  auto reader = s.stub().StreamTrialLogs(&context, request);
  v1::LogChunk chunk;
  while (reader->Read(&chunk)) s.out() << chunk.text() << std::flush;
  grpc::Status status = reader->Finish();
  if (!status.ok()) return s.Fail(FromGrpcStatus(status));
  return kExitOk;
}

// Live view of an experiment's trials for `watch`.
class WatchView {
 public:
  explicit WatchView(Session& s) : s_(s) {}

  void Snapshot(const v1::Experiment& e) {
    experiment_ = e;
    for (const auto& t : e.trials()) Update(t, /*announce=*/false);
    Draw(/*force=*/true);
  }

  void Update(const v1::Trial& trial, bool announce) {
    auto [it, inserted] = trials_.try_emplace(trial.id(), trial);
    if (inserted) {
      order_.push_back(trial.id());
    } else {
      const v1::TrialState before = it->second.state();
      v1::TrialSpec spec = it->second.spec();
      it->second = trial;
      // Updates may omit the spec; the budget (for progress) comes from the snapshot's copy.
      if (!trial.has_spec()) *it->second.mutable_spec() = spec;
      if (announce && before != trial.state() && !s_.context().stdout_is_tty) {
        s_.out() << trial.id() << " " << trial.variant() << ": " << StateName(before) << " -> "
                 << StateName(trial.state())
                 << (trial.status_message().empty() ? "" : " (" + trial.status_message() + ")")
                 << "\n";
      }
    }
    TrialProgress& p = progress_[trial.id()];
    for (const auto& [name, value] : trial.latest_metrics()) p.latest[name] = value;
    p.step = std::max(p.step, trial.latest_step());
    if (announce) Draw(/*force=*/true);
  }

  void Metric(const v1::MetricPoint& point) {
    TrialProgress& p = progress_[point.trial_id()];
    p.latest[point.name()] = point.value();
    p.step = std::max(p.step, point.step());
    p.tokens = std::max(p.tokens, point.tokens());
    p.train_seconds = std::max(p.train_seconds, point.train_seconds());
    if (s_.context().stdout_is_tty) {
      Draw(/*force=*/false);
    } else if (auto it = trials_.find(point.trial_id()); it != trials_.end()) {
      // Plain output: one progress line per trial per evaluation, not per point.
      if (point.name() == "val_loss") s_.out() << FormatProgressLine(it->second, p) << "\n";
    }
  }

  void Finished(const v1::Experiment& e) {
    experiment_ = e;
    for (const auto& t : e.trials()) Update(t, /*announce=*/false);
    Draw(/*force=*/true);
    if (!s_.context().stdout_is_tty) {
      for (const std::string& id : order_) {
        s_.out() << FormatProgressLine(trials_.at(id), progress_[id]) << "\n";
      }
    }
    s_.out() << e.id() << " finished: " << StateName(e.state()) << "\n";
  }

 private:
  void Draw(bool force) {
    if (!s_.context().stdout_is_tty) return;
    const absl::Time now = absl::Now();
    if (!force && now - last_draw_ < absl::Milliseconds(200)) return;
    last_draw_ = now;
    std::ostream& out = s_.out();
    // Move to the first line drawn last time and overwrite in place.
    if (drawn_lines_ > 0) out << "\033[" << drawn_lines_ << "F";
    out << "\033[2K" << experiment_.id() << "  " << experiment_.spec().name() << "  "
        << StateName(experiment_.state()) << "\n";
    for (const std::string& id : order_) {
      out << "\033[2K" << FormatProgressLine(trials_.at(id), progress_[id]) << "\n";
    }
    out << std::flush;
    drawn_lines_ = 1 + static_cast<int>(order_.size());
  }

  Session& s_;
  v1::Experiment experiment_;
  std::vector<std::string> order_;
  std::map<std::string, v1::Trial> trials_;
  std::map<std::string, TrialProgress> progress_;
  int drawn_lines_ = 0;
  absl::Time last_draw_ = absl::InfinitePast();
};

int Watch(Session& s, const Args& args) {
  if (args.positional.size() != 1) return Usage(s.context(), "watch needs one EXPERIMENT");
  v1::WatchExperimentRequest request;
  request.set_experiment(args.positional[0]);
  request.set_include_metrics(true);
  grpc::ClientContext context;
  s.Prepare(&context, /*unary=*/false);
  auto reader = s.stub().WatchExperiment(&context, request);
  WatchView view(s);
  v1::WatchEvent event;
  std::optional<v1::ExperimentState> final_state;
  while (!final_state.has_value() && reader->Read(&event)) {
    switch (event.event_case()) {
      case v1::WatchEvent::kSnapshot:
        view.Snapshot(event.snapshot());
        break;
      case v1::WatchEvent::kTrialUpdate:
        view.Update(event.trial_update(), /*announce=*/true);
        break;
      case v1::WatchEvent::kMetric:
        view.Metric(event.metric());
        break;
      case v1::WatchEvent::kFinished:
        view.Finished(event.finished());
        final_state = event.finished().state();
        break;
      case v1::WatchEvent::EVENT_NOT_SET:
        break;
    }
  }
  if (final_state.has_value()) {
    context.TryCancel();
    reader->Finish();
    return *final_state == v1::EXPERIMENT_STATE_COMPLETED ? kExitOk : kExitExperimentFailed;
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return s.Fail(FromGrpcStatus(status));
  s.err() << "gauntlet: the watch stream ended before the experiment finished\n";
  return kExitRpcError;
}

// Runs `python plot_curves.py curves.json out.png`; the script draws val loss against
// wall-clock time and against tokens, one color per variant.
absl::Status Plot(const CliContext& c, const v1::CompareExperimentResponse& response,
                  const std::string& png) {
  if (c.plot_script.empty() || access(c.plot_script.c_str(), R_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("plot script not found (", c.plot_script.empty() ? "unset" : c.plot_script,
                     "); set GAUNTLET_PLOT_SCRIPT to cli/plot_curves.py"));
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string json_path = absl::StrCat(tmp ? tmp : "/tmp", "/gauntlet-curves-XXXXXX");
  const int fd = mkstemp(json_path.data());
  if (fd < 0) return absl::InternalError("cannot create a temporary file for the curves");
  const std::string json = CurvesJson(response);
  const bool written = write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  close(fd);
  if (!written) return absl::InternalError("cannot write the curves");
  std::vector<std::string> argv_s = {c.python, c.plot_script, json_path, png};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  int status = 0;
  if (rc == 0) waitpid(pid, &status, 0);
  std::remove(json_path.c_str());
  if (rc != 0) return absl::FailedPreconditionError(absl::StrCat("cannot run ", c.python));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("plot_curves.py failed (status ", status, ")"));
  }
  return absl::OkStatus();
}

int Compare(Session& s, const Args& args) {
  if (args.positional.size() != 1) return Usage(s.context(), "compare needs one EXPERIMENT");
  const std::string format = args.Value("format", "table");
  if (format != "table" && format != "markdown" && format != "csv" && format != "json") {
    return Usage(s.context(),
                 absl::StrCat("--format: '", format, "' is not one of table, markdown, csv, json"));
  }
  v1::CompareExperimentRequest request;
  request.set_experiment(args.positional[0]);
  request.set_baseline(args.Value("baseline"));
  if (args.values.count("at")) {
    for (absl::string_view part : absl::StrSplit(args.Value("at"), ',')) {
      double seconds = 0;
      if (!absl::SimpleAtod(part, &seconds) || seconds <= 0) {
        return Usage(s.context(), absl::StrCat("--at: '", part, "' is not a positive number of seconds"));
      }
      request.add_wallclock_points(seconds);
    }
  }
  v1::CompareExperimentResponse response;
  grpc::ClientContext context;
  s.Prepare(&context);
  grpc::Status status = s.stub().CompareExperiment(&context, request, &response);
  if (!status.ok()) return s.Fail(FromGrpcStatus(status));
  absl::StatusOr<std::string> text = FormatCompare(response, format);
  if (!text.ok()) return s.Fail(text.status());
  s.out() << *text;
  if (args.values.count("plot")) {
    if (absl::Status plotted = Plot(s.context(), response, args.Value("plot")); !plotted.ok()) {
      s.err() << "gauntlet: --plot: " << plotted.message() << "\n";
      return kExitRpcError;
    }
    s.err() << "wrote " << args.Value("plot") << "\n";
  }
  return kExitOk;
}

}  // namespace

std::string UsageText() {
  return absl::StrCat(
      "Usage: gauntlet [--coordinator HOST:PORT] [--tls_ca PEM [--tls_cert PEM --tls_key PEM]]\n"
      "                COMMAND [ARGS]\n"
      "\n"
      "Commands:\n"
      "  submit FILE|- [--dry-run]      submit an experiment spec (YAML; - reads stdin)\n"
      "  ls [--state S,..] [--prefix P] list experiments, newest first\n"
      "  describe EXP                   trials with state, attempt, placement, metrics, reasons\n"
      "  watch EXP                      live progress until the experiment finishes\n"
      "  logs TRIAL [-f] [--rank N] [--tail N]\n"
      "                                 a trial's log (rank 0 by default); -f follows it\n"
      "  cancel EXP [--reason TEXT]     stop running trials and cancel pending ones\n"
      "  compare EXP [--format table|markdown|csv|json] [--baseline V] [--at SECONDS,..]\n"
      "              [--plot FILE.png]  the fair comparison table, one row per variant;\n"
      "                                 --plot draws val loss vs time and vs tokens\n"
      "                                 (runs cli/plot_curves.py with python3 + matplotlib)\n"
      "  help                           this text\n"
      "\n"
      "Environment:\n"
      "  GAUNTLET_COORDINATOR  coordinator address (default localhost:50051)\n"
      "  GAUNTLET_TOKEN        bearer token sent with every call\n"
      "  GAUNTLET_TLS_CA       default of --tls_ca: CA that verifies the coordinator (TLS)\n"
      "  GAUNTLET_TLS_CERT     default of --tls_cert: client certificate (mutual TLS)\n"
      "  GAUNTLET_TLS_KEY      default of --tls_key: its private key\n"
      "  GAUNTLET_PLOT_SCRIPT  path of plot_curves.py (found beside the binary by default)\n"
      "\n",
      ExitCodeHelp());
}

int RunCli(const std::vector<std::string>& raw_args, const CliContext& c) {
  // Global flags may appear before or after the command.
  std::map<std::string, std::string> globals = {{"coordinator", c.default_coordinator},
                                                 {"tls_ca", c.tls_ca},
                                                 {"tls_cert", c.tls_cert},
                                                 {"tls_key", c.tls_key}};
  std::vector<std::string> args;
  for (size_t i = 0; i < raw_args.size(); ++i) {
    std::string a = raw_args[i] == "-c" ? "--coordinator" : raw_args[i];
    std::optional<std::string> value;
    if (const size_t eq = a.find('='); absl::StartsWith(a, "--") && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto global = absl::StartsWith(a, "--") ? globals.find(a.substr(2)) : globals.end();
    if (global == globals.end()) {
      args.push_back(raw_args[i]);
      continue;
    }
    if (!value.has_value()) {
      if (i + 1 >= raw_args.size()) return Usage(c, absl::StrCat(a, " needs a value"));
      value = raw_args[++i];
    }
    global->second = *value;
  }
  if (args.empty()) return Usage(c, "no command given");
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "help" || command == "--help" || command == "-h") {
    *c.out << UsageText();
    return kExitOk;
  }
  struct Spec {
    std::set<std::string> values, bools;
    std::map<std::string, std::string> aliases;
    std::function<int(Session&, const Args&)> run;
  };
  const std::map<std::string, Spec> commands = {
      {"submit", {{}, {"dry-run"}, {}, Submit}},
      {"ls", {{"state", "prefix"}, {}, {}, List}},
      {"describe", {{}, {}, {}, Describe}},
      {"watch", {{}, {}, {}, Watch}},
      {"logs", {{"rank", "tail"}, {"follow"}, {{"-f", "--follow"}}, Logs}},
      {"cancel", {{"reason"}, {}, {}, Cancel}},
      {"compare", {{"format", "baseline", "at", "plot"}, {}, {}, Compare}},
  };
  auto it = commands.find(command);
  if (it == commands.end()) return Usage(c, absl::StrCat("unknown command '", command, "'"));
  absl::StatusOr<Args> parsed =
      ParseArgs(args, it->second.values, it->second.bools, it->second.aliases);
  if (!parsed.ok()) return Usage(c, absl::StrCat(command, ": ", parsed.status().message()));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials({globals["tls_ca"], globals["tls_cert"], globals["tls_key"]});
  if (!credentials.ok()) return Usage(c, std::string(credentials.status().message()));
  Session session(c, globals["coordinator"], *std::move(credentials), !globals["tls_ca"].empty());
  return it->second.run(session, *parsed);
}

}  // namespace gauntlet::cli
