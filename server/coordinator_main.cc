// The Gauntlet coordinator: serves the Coordinator and WorkerService APIs, the standard gRPC
// health service and server reflection, exports Prometheus metrics, runs the control loop, and
// exits cleanly on SIGTERM/SIGINT.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "prometheus/exposer.h"
#include "common/clock.h"
#include "common/tls_credentials.h"
#include "server/controller.h"
#include "server/coordinator_service.h"
#include "server/health_service.h"
#include "server/metrics.h"
#include "server/rpc_edge.h"
#include "server/signal_waiter.h"
#include "server/spec_compiler.h"
#include "server/sqlite_store.h"
#include "server/worker_service.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC listen address (port 0 picks a free one)");
ABSL_FLAG(std::string, port_file, "", "If set, the bound gRPC port is written here once serving");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics listen address (port 0 picks a free one). Loopback by default: "
          "/metrics is plain HTTP, so expose it (0.0.0.0:9464) only on a trusted network");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound /metrics port is written here once serving");
ABSL_FLAG(std::string, db, "/var/lib/gauntlet/gauntlet.db", "SQLite database file");
ABSL_FLAG(double, lease_seconds, 15, "A worker silent for this long is lost");
ABSL_FLAG(double, heartbeat_interval_seconds, 2, "Heartbeat interval asked of workers");
ABSL_FLAG(int, unhealthy_after_failures, 3,
          "Consecutive failed launches after which a worker gets no trials for a while");
ABSL_FLAG(double, unhealthy_seconds, 300, "How long an unhealthy worker gets no trials");
ABSL_FLAG(int, max_rpc_threads, 64,
          "Bound on the gRPC server's threads: a burst of clients queues instead of growing "
          "the coordinator to thousands of threads");
ABSL_FLAG(std::string, auth_token_file, "",
          "If set, every Coordinator and WorkerService RPC must carry "
          "'authorization: Bearer <token>' with the token in this file");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: with --tls_key, gRPC is served over TLS only (plaintext, the "
          "default, is meant for loopback)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "If set (with --tls_cert), mutual TLS: every client must present a certificate signed "
          "by a CA in this PEM file");

namespace {

constexpr char kVersion[] = "0.1.0";
// How often the control loop runs: scheduling and lease expiry react within this.
constexpr absl::Duration kTickInterval = absl::Milliseconds(200);

void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  // Written then renamed, so a reader never sees a half-written port.
  std::ofstream(path + ".tmp") << port << "\n";
  std::rename((path + ".tmp").c_str(), path.c_str());
}

int Fail(const std::string& message) {
  std::cerr << "coordinator: " << message << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  gauntlet::SignalWaiter signals;
  absl::ParseCommandLine(argc, argv);

  const double lease_seconds = absl::GetFlag(FLAGS_lease_seconds);
  const double interval_seconds = absl::GetFlag(FLAGS_heartbeat_interval_seconds);
  if (!(lease_seconds > 0) || !(interval_seconds > 0) || interval_seconds >= lease_seconds) {
    return Fail("--heartbeat_interval_seconds and --lease_seconds must be > 0, interval < lease");
  }
  std::string auth_token;
  if (const std::string path = absl::GetFlag(FLAGS_auth_token_file); !path.empty()) {
    std::ifstream in(path);
    if (!in) return Fail("--auth_token_file: cannot read " + path);
    std::stringstream contents;
    contents << in.rdbuf();
    auth_token = std::string(absl::StripAsciiWhitespace(contents.str()));
    if (auth_token.empty()) return Fail("--auth_token_file: " + path + " is empty");
  }

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      gauntlet::MakeServerCredentials({absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                                       absl::GetFlag(FLAGS_tls_client_ca)});
  if (!credentials.ok()) return Fail(std::string(credentials.status().message()));
  const bool tls = !absl::GetFlag(FLAGS_tls_cert).empty();

  absl::StatusOr<std::unique_ptr<gauntlet::SqliteStore>> store =
      gauntlet::SqliteStore::Open(absl::GetFlag(FLAGS_db));
  if (!store.ok()) return Fail(std::string(store.status().message()));

  gauntlet::CoordinatorMetrics metrics(kVersion);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(absl::GetFlag(FLAGS_metrics_listen));
  } catch (const std::exception& e) {
    return Fail("--metrics_listen: cannot listen on " + absl::GetFlag(FLAGS_metrics_listen) +
                ": " + e.what());
  }
  exposer->RegisterCollectable(metrics.registry());

  gauntlet::RealClock clock;
  gauntlet::ControllerOptions options;
  options.lease = absl::Seconds(lease_seconds);
  options.heartbeat_interval = absl::Seconds(interval_seconds);
  options.unhealthy_after_failures = absl::GetFlag(FLAGS_unhealthy_after_failures);
  options.unhealthy_for = absl::Seconds(absl::GetFlag(FLAGS_unhealthy_seconds));
  gauntlet::Controller controller(store->get(), &metrics, &clock,
                                  gauntlet::CompileExperimentYaml, options);
  if (absl::Status status = controller.Recover(); !status.ok()) {
    return Fail("recovering from " + absl::GetFlag(FLAGS_db) + ": " + status.ToString());
  }

  gauntlet::RpcEdge edge(&metrics, auth_token);
  gauntlet::CoordinatorService coordinator(&controller, &edge);
  gauntlet::WorkerServiceImpl worker_service(&controller, &edge);
  gauntlet::HealthService health;
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  grpc::ResourceQuota quota("coordinator");
  quota.SetMaxThreads(std::max(4, absl::GetFlag(FLAGS_max_rpc_threads)));
  builder.SetResourceQuota(quota);
  int bound_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), *credentials, &bound_port);
  builder.RegisterService(&coordinator);
  builder.RegisterService(&worker_service);
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    return Fail("cannot listen on " + absl::GetFlag(FLAGS_listen) +
                (tls ? " (check that --tls_key matches --tls_cert)" : ""));
  }

  absl::Notification stop;
  std::thread loop([&] {
    // A tick at least every kTickInterval, and at once when a submit, an exit or a new worker
    // asks for one (a launch must not wait for the next tick).
    while (!stop.HasBeenNotified()) {
      controller.AwaitWork(kTickInterval);
      controller.Tick(clock.Now());
    }
  });

  for (const char* service : {"", "gauntlet.v1.Coordinator", "gauntlet.v1.WorkerService"}) {
    health.SetStatus(service, grpc::health::v1::HealthCheckResponse::SERVING);
  }
  const int metrics_port = exposer->GetListeningPorts().front();
  std::cout << "coordinator: serving gRPC on port " << bound_port
            << (tls ? (absl::GetFlag(FLAGS_tls_client_ca).empty() ? " (TLS)" : " (mutual TLS)")
                    : " (plaintext)")
            << ", /metrics on port "
            << metrics_port << ", db " << absl::GetFlag(FLAGS_db) << std::endl;
  WritePortFile(absl::GetFlag(FLAGS_metrics_port_file), metrics_port);
  WritePortFile(absl::GetFlag(FLAGS_port_file), bound_port);

  const int signal_number = signals.Wait();
  std::cout << "coordinator: signal " << signal_number << ", shutting down" << std::endl;
  health.Shutdown();
  stop.Notify();
  loop.join();
  worker_service.CloseStreams();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
