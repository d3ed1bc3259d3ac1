#ifndef GAUNTLET_SERVER_WORKER_SERVICE_H_
#define GAUNTLET_SERVER_WORKER_SERVICE_H_

#include <memory>
#include <set>

#include "absl/synchronization/mutex.h"
#include "gauntlet/v1/worker.grpc.pb.h"
#include "server/controller.h"
#include "server/rpc_edge.h"

namespace gauntlet {

// gauntlet.v1.WorkerService over gRPC: heartbeats, metrics, exits and logs into the Controller.
// WatchActions uses the callback API, so an open stream per worker holds no thread (10,000
// agents must not need 10,000 threads); the unary methods stay on the bounded sync pool.
class WorkerServiceImpl final
    : public v1::WorkerService::WithCallbackMethod_WatchActions<v1::WorkerService::Service> {
 public:
  WorkerServiceImpl(Controller* controller, RpcEdge* edge)
      : controller_(controller), edge_(edge) {}
  ~WorkerServiceImpl() override;

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
  grpc::ServerWriteReactor<v1::ActionsReady>* WatchActions(
      grpc::CallbackServerContext* context, const v1::WatchActionsRequest* request) override;

  // Ends every open WatchActions stream (OK) and refuses new ones: call before
  // grpc::Server::Shutdown, which would otherwise wait out its deadline for them.
  void CloseStreams();

 private:
  class ActionsStream;

  Controller* const controller_;
  RpcEdge* const edge_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::shared_ptr<ActionsStream>> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WORKER_SERVICE_H_
