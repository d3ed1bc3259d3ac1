#include "worker/coordinator_client.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace gauntlet::worker {

GrpcCoordinatorClient::GrpcCoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                                             std::string auth_token, absl::Duration timeout,
                                             absl::Duration heartbeat_timeout)
    : stub_(v1::WorkerService::NewStub(channel)),
      auth_token_(std::move(auth_token)),
      timeout_(timeout),
      heartbeat_timeout_(heartbeat_timeout) {}

void GrpcCoordinatorClient::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  if (!auth_token_.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", auth_token_));
  }
}

absl::StatusOr<v1::HeartbeatResponse> GrpcCoordinatorClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  grpc::ClientContext context;
  Prepare(&context);
  // A heartbeat stuck behind a dead connection must not outlive the agent's backoff: the next
  // one, on a fresh connection, has to land inside the lease.
  context.set_deadline(absl::ToChronoTime(absl::Now() + std::min(timeout_, heartbeat_timeout_)));
  v1::HeartbeatResponse response;
  grpc::Status status = stub_->Heartbeat(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::Status GrpcCoordinatorClient::ReportMetrics(const v1::ReportMetricsRequest& request) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::ReportMetricsResponse response;
  absl::Status status = FromGrpcStatus(stub_->ReportMetrics(&context, request, &response));
  // The rest of the batch was stored; say which points were not, and why.
  for (const std::string& rejected : response.rejected()) {
    std::cerr << "worker: coordinator rejected metric " << rejected << std::endl;
  }
  return status;
}

absl::Status GrpcCoordinatorClient::ReportTrialExit(const v1::ReportTrialExitRequest& request) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::ReportTrialExitResponse response;
  return FromGrpcStatus(stub_->ReportTrialExit(&context, request, &response));
}

absl::Status GrpcCoordinatorClient::ReportLogs(const v1::ReportLogsRequest& request) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::ReportLogsResponse response;
  return FromGrpcStatus(stub_->ReportLogs(&context, request, &response));
}

absl::Status GrpcCoordinatorClient::Deregister(const v1::DeregisterRequest& request) {
  grpc::ClientContext context;
  Prepare(&context);
  v1::DeregisterResponse response;
  return FromGrpcStatus(stub_->Deregister(&context, request, &response));
}

}  // namespace gauntlet::worker
