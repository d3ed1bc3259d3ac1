#ifndef GAUNTLET_SERVER_COORDINATOR_SERVICE_H_
#define GAUNTLET_SERVER_COORDINATOR_SERVICE_H_

#include "gauntlet/v1/coordinator.grpc.pb.h"
#include "server/controller.h"
#include "server/rpc_edge.h"

namespace gauntlet {

// gauntlet.v1.Coordinator over gRPC: translates between the wire and the Controller.
class CoordinatorService final : public v1::Coordinator::Service {
 public:
  CoordinatorService(Controller* controller, RpcEdge* edge)
      : controller_(controller), edge_(edge) {}

  grpc::Status SubmitExperiment(grpc::ServerContext* context,
                                const v1::SubmitExperimentRequest* request,
                                v1::SubmitExperimentResponse* response) override;
  grpc::Status GetExperiment(grpc::ServerContext* context,
                             const v1::GetExperimentRequest* request,
                             v1::Experiment* response) override;
  grpc::Status ListExperiments(grpc::ServerContext* context,
                               const v1::ListExperimentsRequest* request,
                               v1::ListExperimentsResponse* response) override;
  grpc::Status CancelExperiment(grpc::ServerContext* context,
                                const v1::CancelExperimentRequest* request,
                                v1::Experiment* response) override;
  grpc::Status WatchExperiment(grpc::ServerContext* context,
                               const v1::WatchExperimentRequest* request,
                               grpc::ServerWriter<v1::WatchEvent>* writer) override;
  grpc::Status CompareExperiment(grpc::ServerContext* context,
                                 const v1::CompareExperimentRequest* request,
                                 v1::CompareExperimentResponse* response) override;
  grpc::Status StreamTrialLogs(grpc::ServerContext* context,
                               const v1::StreamTrialLogsRequest* request,
                               grpc::ServerWriter<v1::LogChunk>* writer) override;

 private:
  Controller* const controller_;
  RpcEdge* const edge_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_COORDINATOR_SERVICE_H_
