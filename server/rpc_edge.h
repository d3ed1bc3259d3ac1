#ifndef GAUNTLET_SERVER_RPC_EDGE_H_
#define GAUNTLET_SERVER_RPC_EDGE_H_

#include <exception>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "server/metrics.h"

namespace gauntlet {

// "OK", "INVALID_ARGUMENT", ... as used in the rpc metrics' code label.
std::string GrpcCodeName(grpc::StatusCode code);

// Where an RPC enters the coordinator: the optional bearer-token check, counting and timing in
// gauntlet_rpc_requests_total / gauntlet_rpc_latency_seconds, and a last guard that turns an
// escaped exception into INTERNAL instead of a crashed daemon.
class RpcEdge {
 public:
  // An empty token disables authentication.
  RpcEdge(CoordinatorMetrics* metrics, std::string auth_token)
      : metrics_(metrics), auth_token_(std::move(auth_token)) {}

  // OK when the call carries `authorization: Bearer <token>` (or no token is configured).
  grpc::Status Authorize(const grpc::ServerContextBase& context) const;

  // Runs `handler` (returning grpc::Status) for `method` behind the checks above.
  template <typename Handler>
  grpc::Status Handle(const char* method, grpc::ServerContext* context, Handler&& handler) {
    const absl::Time start = absl::Now();
    grpc::Status status = Authorize(*context);
    if (status.ok()) {
      try {
        status = handler();
      } catch (const std::exception& e) {
        status = grpc::Status(grpc::StatusCode::INTERNAL, std::string("internal error: ") + e.what());
      }
    }
    metrics_->ObserveRpc(method, GrpcCodeName(status.error_code()),
                         absl::ToDoubleSeconds(absl::Now() - start));
    return status;
  }

 private:
  CoordinatorMetrics* const metrics_;
  const std::string auth_token_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_RPC_EDGE_H_
