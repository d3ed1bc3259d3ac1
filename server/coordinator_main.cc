// The Gauntlet coordinator: serves the Coordinator and WorkerService APIs, the standard gRPC
// health service and server reflection, and exits cleanly on SIGTERM/SIGINT.
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "gauntlet/v1/coordinator.grpc.pb.h"
#include "gauntlet/v1/worker.grpc.pb.h"
#include "server/health_service.h"
#include "server/signal_waiter.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC listen address (port 0 picks a free one)");
ABSL_FLAG(std::string, port_file, "", "If set, the bound gRPC port is written here once serving");

int main(int argc, char** argv) {
  gauntlet::SignalWaiter signals;
  absl::ParseCommandLine(argc, argv);

  // Until the control plane lands every RPC answers UNIMPLEMENTED (the generated base classes).
  gauntlet::v1::Coordinator::Service coordinator;
  gauntlet::v1::WorkerService::Service worker_service;

  gauntlet::HealthService health;
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.RegisterService(&coordinator);
  builder.RegisterService(&worker_service);
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::cerr << "coordinator: cannot listen on " << absl::GetFlag(FLAGS_listen) << "\n";
    return 1;
  }
  for (const char* service : {"", "gauntlet.v1.Coordinator", "gauntlet.v1.WorkerService"}) {
    health.SetStatus(service, grpc::health::v1::HealthCheckResponse::SERVING);
  }
  std::cout << "coordinator: serving gRPC on port " << bound_port << std::endl;
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << bound_port << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }

  const int signal_number = signals.Wait();
  std::cout << "coordinator: signal " << signal_number << ", shutting down" << std::endl;
  health.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
