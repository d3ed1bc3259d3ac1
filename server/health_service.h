#ifndef GAUNTLET_SERVER_HEALTH_SERVICE_H_
#define GAUNTLET_SERVER_HEALTH_SERVICE_H_

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace gauntlet {

// grpc.health.v1.Health. Our own implementation (not grpc's default one) so that the service's
// descriptors are linked in and reflection can describe it; Kubernetes probes and grpcurl use it.
class HealthService final : public grpc::health::v1::Health::Service {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // Sets the status of `service` ("" is the whole server) and wakes watchers.
  void SetStatus(const std::string& service, Status status);
  // Marks every known service NOT_SERVING and ends all Watch streams (server shutdown).
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  absl::Mutex mu_;
  std::map<std::string, Status> statuses_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_HEALTH_SERVICE_H_
