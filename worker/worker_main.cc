// The Gauntlet worker agent: registers this node's GPUs (or CPU slots) with the coordinator,
// launches trainer gangs on its orders and forwards their metrics, logs and exits.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/spec_yaml.h"
#include "common/tls_credentials.h"
#include "worker/action_stream.h"
#include "worker/coordinator_client.h"
#include "worker/gpu_inventory.h"
#include "worker/process_launcher.h"
#include "worker/worker_agent.h"

extern char** environ;

ABSL_FLAG(std::string, coordinator, "localhost:50051", "Coordinator gRPC address HOST:PORT");
ABSL_FLAG(std::string, worker_id, "", "Stable worker id (default: hostname)");
ABSL_FLAG(std::string, address, "", "Address other ranks use to reach this host (default: hostname)");
ABSL_FLAG(int, cpu_slots, -1,
          "CPU trial slots (default: 0 when GPUs exist, else max(1, nproc/2))");
ABSL_FLAG(std::string, gpus, "auto", "GPUs to offer: auto, none, or indices like 0,1");
ABSL_FLAG(std::string, work_dir, "/var/lib/gauntlet-worker", "Per-trial run directories");
ABSL_FLAG(std::string, trainer, "", "Path of the trainer binary");
ABSL_FLAG(std::string, data_root, "", "Relative data paths in specs resolve against this dir");
ABSL_FLAG(std::vector<std::string>, extra_data_roots, {},
          "More directories absolute data paths may name (comma-separated), besides --data_root");
ABSL_FLAG(std::vector<std::string>, cache_roots, {},
          "Directories an absolute data.cache_dir may name (comma-separated), besides --work_dir");
ABSL_FLAG(int, rendezvous_port_base, 29500, "First port for rank-0 rendezvous on this host");
ABSL_FLAG(std::string, auth_token_file, "", "File holding the coordinator's bearer token");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM roots that verify the coordinator's certificate: if set, the coordinator is "
          "reached over TLS (plaintext, the default, is meant for loopback)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate, for a coordinator started with --tls_client_ca");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(double, heartbeat_seconds, 0, "Heartbeat interval (0: as the coordinator says)");
ABSL_FLAG(double, kill_grace_seconds, 10, "SIGTERM-to-SIGKILL grace when stopping a gang");
ABSL_FLAG(std::string, checkpoint_store, "",
          "Directory for trial checkpoints (<dir>/<trial>); default <work_dir>/checkpoints. "
          "Point every worker at one shared mount (and set --checkpoint_store_shared) so a "
          "restart on another worker resumes from the last checkpoint");
ABSL_FLAG(bool, checkpoint_store_shared, false,
          "--checkpoint_store is mounted by every worker (restarts elsewhere can resume)");
ABSL_FLAG(double, max_backoff_seconds, 30,
          "Longest reconnect backoff (also capped at a quarter of the coordinator's lease)");
ABSL_FLAG(int, max_auth_failures, 5,
          "Exit non-zero after this many heartbeats in a row refused for bad credentials "
          "(0: never)");

namespace {

std::string Hostname() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

int Fail(const std::string& message) {
  std::cerr << "worker: " << message << std::endl;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // The synchronous client only polls its connection while a call is in flight; between calls a
  // reconnect result waits for gRPC's backup poller, every 5 s by default. At 5 s a worker
  // reconnecting after a coordinator restart could miss its lease; poll every 100 ms instead.
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  // Termination signals are taken synchronously by one thread; children get an empty mask back.
  sigset_t termination;
  sigemptyset(&termination);
  sigaddset(&termination, SIGTERM);
  sigaddset(&termination, SIGINT);
  pthread_sigmask(SIG_BLOCK, &termination, nullptr);
  absl::ParseCommandLine(argc, argv);
  using gauntlet::worker::WorkerAgentOptions;

  const std::string trainer = absl::GetFlag(FLAGS_trainer);
  if (trainer.empty()) return Fail("--trainer is required (path of the trainer binary)");
  if (access(trainer.c_str(), X_OK) != 0) return Fail("--trainer " + trainer + " is not executable");
  const std::string work_dir = absl::GetFlag(FLAGS_work_dir);
  if (work_dir.empty() || work_dir[0] != '/') {
    return Fail("--work_dir must be an absolute path, got '" + work_dir + "'");
  }
  const int port_base = absl::GetFlag(FLAGS_rendezvous_port_base);
  if (port_base <= 0 || port_base > 65535) {
    return Fail(absl::StrCat("--rendezvous_port_base out of range: ", port_base));
  }

  gauntlet::worker::NvidiaSmiInventory nvidia_smi;
  absl::StatusOr<std::vector<gauntlet::v1::GpuInfo>> found =
      absl::GetFlag(FLAGS_gpus) == "none" ? std::vector<gauntlet::v1::GpuInfo>{}
                                          : nvidia_smi.Discover();
  if (!found.ok()) return Fail(found.status().ToString());
  absl::StatusOr<std::vector<gauntlet::v1::GpuInfo>> gpus =
      gauntlet::worker::SelectGpus(*found, absl::GetFlag(FLAGS_gpus));
  if (!gpus.ok()) return Fail(gpus.status().ToString());

  WorkerAgentOptions options;
  const std::string hostname = Hostname();
  options.worker_id = absl::GetFlag(FLAGS_worker_id).empty() ? hostname
                                                             : absl::GetFlag(FLAGS_worker_id);
  gauntlet::v1::WorkerInventory& inventory = options.inventory;
  inventory.set_hostname(hostname);
  inventory.set_address(absl::GetFlag(FLAGS_address).empty() ? hostname
                                                             : absl::GetFlag(FLAGS_address));
  for (const auto& gpu : *gpus) *inventory.add_gpus() = gpu;
  int cpu_slots = absl::GetFlag(FLAGS_cpu_slots);
  if (cpu_slots < 0) {
    const long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_slots = gpus->empty() ? std::max(1L, nproc / 2) : 0;
  }
  inventory.set_cpu_slots(cpu_slots);
  inventory.set_rendezvous_port_base(port_base);

  options.launch.work_dir = work_dir;
  const std::string checkpoint_store = absl::GetFlag(FLAGS_checkpoint_store).empty()
                                           ? work_dir + "/checkpoints"
                                           : absl::GetFlag(FLAGS_checkpoint_store);
  if (checkpoint_store[0] != '/') {
    return Fail("--checkpoint_store must be an absolute path, got '" + checkpoint_store + "'");
  }
  options.launch.checkpoint_store = checkpoint_store;
  inventory.set_checkpoint_store(checkpoint_store);
  inventory.set_checkpoint_store_shared(absl::GetFlag(FLAGS_checkpoint_store_shared));
  if (std::error_code error; !std::filesystem::create_directories(work_dir, error) && error) {
    return Fail("--work_dir " + work_dir + ": " + error.message());
  }
  options.record_path = work_dir + "/agent-record.pb";
  options.max_backoff = absl::Seconds(absl::GetFlag(FLAGS_max_backoff_seconds));
  options.max_auth_failures = absl::GetFlag(FLAGS_max_auth_failures);
  options.launch.trainer_path = trainer;
  options.launch.data_root = absl::GetFlag(FLAGS_data_root);
  options.launch.extra_data_roots = absl::GetFlag(FLAGS_extra_data_roots);
  options.launch.cache_roots = absl::GetFlag(FLAGS_cache_roots);
  if (cpu_slots > 0) {
    options.launch.threads_per_cpu_rank =
        std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)) / cpu_slots);
  }
  for (char** e = environ; *e != nullptr; ++e) options.launch.base_env.emplace_back(*e);
  options.spec_to_yaml = [](const gauntlet::v1::TrialSpec& spec) -> absl::StatusOr<std::string> {
    return gauntlet::TrialSpecToYaml(spec);
  };
  if (absl::GetFlag(FLAGS_heartbeat_seconds) > 0) {
    options.heartbeat_interval_override = absl::Seconds(absl::GetFlag(FLAGS_heartbeat_seconds));
  }
  options.kill_grace = absl::Seconds(absl::GetFlag(FLAGS_kill_grace_seconds));

  std::string token;
  if (const std::string path = absl::GetFlag(FLAGS_auth_token_file); !path.empty()) {
    std::ifstream in(path);
    if (!in) return Fail("--auth_token_file " + path + " cannot be read");
    std::stringstream buffer;
    buffer << in.rdbuf();
    token = std::string(absl::StripAsciiWhitespace(buffer.str()));
    if (token.empty()) return Fail("--auth_token_file " + path + " is empty");
  }

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      gauntlet::MakeChannelCredentials({absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert),
                                        absl::GetFlag(FLAGS_tls_key)});
  if (!credentials.ok()) return Fail(std::string(credentials.status().message()));
  options.unreachable_hint =
      absl::GetFlag(FLAGS_tls_ca).empty()
          ? " (connecting in plaintext: if the coordinator serves TLS, pass --tls_ca)"
          : " (connecting over TLS: check that --tls_ca signed the coordinator's certificate "
            "and that it names this host)";

  std::cerr << "worker: " << inventory.gpus_size() << " GPUs, " << inventory.cpu_slots()
            << " CPU slots; coordinator " << absl::GetFlag(FLAGS_coordinator) << std::endl;
  // gRPC's own reconnect backoff grows to minutes; capped so a coordinator that comes back is
  // reached within about a second, well inside the lease. (The minimum connect timeout stays
  // gRPC's: a short one fails every handshake with a busy coordinator.)
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel(absl::GetFlag(FLAGS_coordinator),
                                           *credentials, channel_args);
  gauntlet::worker::GrpcCoordinatorClient client(channel, token);
  gauntlet::worker::PosixProcessLauncher launcher;
  gauntlet::RealClock clock;
  const std::string worker_id = options.worker_id;
  gauntlet::worker::WorkerAgent agent(std::move(options), &client, &launcher);
  agent.AdoptOrphans();
  // Launches arrive in one round trip: the coordinator wakes the agent over this stream.
  gauntlet::worker::ActionStream actions(channel, token, worker_id, [&] { agent.Wake(); });

  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    int signal_number = 0;
    sigwait(&termination, &signal_number);
    std::cerr << "worker: signal " << signal_number << ", stopping trainers" << std::endl;
    stop = true;
  });
  signal_thread.detach();
  agent.Run(&clock, absl::Milliseconds(100), [&] { return stop.load(); },
            absl::Seconds(absl::GetFlag(FLAGS_kill_grace_seconds)) + absl::Seconds(5));
  if (!agent.fatal().ok()) {
    std::cerr << "worker: FATAL: " << agent.fatal().message() << std::endl;
    return 3;
  }
  return 0;
}
