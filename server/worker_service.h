#ifndef GAUNTLET_SERVER_WORKER_SERVICE_H_
#define GAUNTLET_SERVER_WORKER_SERVICE_H_

#include "gauntlet/v1/worker.grpc.pb.h"
#include "server/controller.h"
#include "server/rpc_edge.h"

namespace gauntlet {

// gauntlet.v1.WorkerService over gRPC: heartbeats, metrics, exits and logs into the Controller.
class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Controller* controller, RpcEdge* edge)
      : controller_(controller), edge_(edge) {}

  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReportMetrics(grpc::ServerContext* context,
                             const v1::ReportMetricsRequest* request,
                             v1::ReportMetricsResponse* response) override;
  grpc::Status ReportTrialExit(grpc::ServerContext* context,
                               const v1::ReportTrialExitRequest* request,
                               v1::ReportTrialExitResponse* response) override;
  grpc::Status ReportLogs(grpc::ServerContext* context, const v1::ReportLogsRequest* request,
                          v1::ReportLogsResponse* response) override;
  grpc::Status Deregister(grpc::ServerContext* context, const v1::DeregisterRequest* request,
                          v1::DeregisterResponse* response) override;

 private:
  Controller* const controller_;
  RpcEdge* const edge_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WORKER_SERVICE_H_
