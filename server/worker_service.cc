#include "server/worker_service.h"

namespace gauntlet {

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  return edge_->Handle("Heartbeat", context, [&] {
    absl::StatusOr<v1::HeartbeatResponse> result = controller_->Heartbeat(*request);
    if (result.ok()) *response = *std::move(result);
    return ToGrpcStatus(result.status());
  });
}

grpc::Status WorkerServiceImpl::ReportMetrics(grpc::ServerContext* context,
                                              const v1::ReportMetricsRequest* request,
                                              v1::ReportMetricsResponse* response) {
  return edge_->Handle("ReportMetrics", context, [&] {
    return ToGrpcStatus(controller_->ReportMetrics(*request, response));
  });
}

grpc::Status WorkerServiceImpl::ReportTrialExit(grpc::ServerContext* context,
                                                const v1::ReportTrialExitRequest* request,
                                                v1::ReportTrialExitResponse*) {
  return edge_->Handle("ReportTrialExit", context,
                       [&] { return ToGrpcStatus(controller_->ReportTrialExit(*request)); });
}

grpc::Status WorkerServiceImpl::ReportLogs(grpc::ServerContext* context,
                                           const v1::ReportLogsRequest* request,
                                           v1::ReportLogsResponse*) {
  return edge_->Handle("ReportLogs", context,
                       [&] { return ToGrpcStatus(controller_->ReportLogs(*request)); });
}

grpc::Status WorkerServiceImpl::Deregister(grpc::ServerContext* context,
                                           const v1::DeregisterRequest* request,
                                           v1::DeregisterResponse*) {
  return edge_->Handle("Deregister", context,
                       [&] { return ToGrpcStatus(controller_->Deregister(*request)); });
}

}  // namespace gauntlet
