#include "server/health_service.h"

#include "absl/time/time.h"

namespace gauntlet {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

void HealthService::SetStatus(const std::string& service, Status status) {
  absl::MutexLock lock(&mu_);
  statuses_[service] = status;
  ++version_;
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  for (auto& entry : statuses_) entry.second = HealthCheckResponse::NOT_SERVING;
  shutdown_ = true;
  ++version_;
}

grpc::Status HealthService::Check(grpc::ServerContext*, const HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  absl::MutexLock lock(&mu_);
  auto it = statuses_.find(request->service());
  if (it == statuses_.end()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown service '" + request->service() + "'");
  }
  response->set_status(it->second);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context, const HealthCheckRequest* request,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  int64_t seen_version = -1;
  while (!context->IsCancelled()) {
    HealthCheckResponse response;
    {
      absl::MutexLock lock(&mu_);
      // Wake on a change, or every 500 ms to notice a cancelled client.
      auto changed = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return version_ != seen_version; };
      mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Milliseconds(500));
      if (version_ == seen_version) continue;
      seen_version = version_;
      auto it = statuses_.find(request->service());
      response.set_status(it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                                                : it->second);
      if (shutdown_) {
        writer->Write(response);
        return grpc::Status::OK;
      }
    }
    if (!writer->Write(response)) break;
  }
  return grpc::Status::OK;
}

}  // namespace gauntlet
