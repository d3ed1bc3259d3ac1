#ifndef GAUNTLET_WORKER_COORDINATOR_CLIENT_H_
#define GAUNTLET_WORKER_COORDINATOR_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "gauntlet/v1/worker.grpc.pb.h"

namespace gauntlet::worker {

// The worker's view of the coordinator's WorkerService: one call per RPC, absl::Status errors.
class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) = 0;
  virtual absl::Status ReportMetrics(const v1::ReportMetricsRequest& request) = 0;
  virtual absl::Status ReportTrialExit(const v1::ReportTrialExitRequest& request) = 0;
  virtual absl::Status ReportLogs(const v1::ReportLogsRequest& request) = 0;
  virtual absl::Status Deregister(const v1::DeregisterRequest& request) = 0;
};

// gRPC implementation. The channel reconnects on its own; every call has a deadline so a hung
// coordinator cannot stall the agent's loop, and fails fast (no wait-for-ready) so the agent's
// backoff, not gRPC's, decides when to retry.
class GrpcCoordinatorClient : public CoordinatorClient {
 public:
  // `auth_token` empty: no authorization metadata.
  GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel, std::string auth_token,
                        absl::Duration timeout = absl::Seconds(5),
                        absl::Duration heartbeat_timeout = absl::Seconds(1));

  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request) override;
  absl::Status ReportMetrics(const v1::ReportMetricsRequest& request) override;
  absl::Status ReportTrialExit(const v1::ReportTrialExitRequest& request) override;
  absl::Status ReportLogs(const v1::ReportLogsRequest& request) override;
  absl::Status Deregister(const v1::DeregisterRequest& request) override;

 private:
  void Prepare(grpc::ClientContext* context) const;

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::string auth_token_;
  absl::Duration timeout_;
  absl::Duration heartbeat_timeout_;
};

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_COORDINATOR_CLIENT_H_
