#include "server/worker_service.h"

#include <utility>

namespace gauntlet {

// One agent's wake-up stream. A wake while a write is in flight is remembered and sent after it,
// so wakes coalesce and never queue up. Shared by the reactor (released in OnDone) and the
// waker in WorkerWakeups, which may fire on another thread at any time until it is removed.
class WorkerServiceImpl::ActionsStream final : public grpc::ServerWriteReactor<v1::ActionsReady> {
 public:
  ActionsStream(WorkerServiceImpl* service, std::string worker_id)
      : service_(service), worker_id_(std::move(worker_id)) {}

  // Keeps itself alive until OnDone.
  void Hold(std::shared_ptr<ActionsStream> self) { self_ = std::move(self); }
  void Start() {
    std::shared_ptr<ActionsStream> self = self_;
    token_ = service_->controller_->wakeups()->Add(worker_id_, [self] { self->Wake(); });
    Wake();  // a placement made before the stream opened is fetched now
  }
  void Wake() {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    if (writing_) {
      again_ = true;
      return;
    }
    writing_ = true;
    StartWrite(&message_);
  }
  void End(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    Finish(std::move(status));
  }
  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (ok && !finished_ && std::exchange(again_, false)) {
        writing_ = true;
        StartWrite(&message_);
        return;
      }
    }
    if (!ok) End(grpc::Status::OK);
  }
  void OnCancel() override { End(grpc::Status::CANCELLED); }
  void OnDone() override {
    service_->controller_->wakeups()->Remove(worker_id_, token_);
    std::shared_ptr<ActionsStream> self = std::move(self_);
    absl::MutexLock lock(&service_->mu_);
    service_->streams_.erase(self);
  }

 private:
  WorkerServiceImpl* const service_;
  const std::string worker_id_;
  uint64_t token_ = 0;
  std::shared_ptr<ActionsStream> self_;
  const v1::ActionsReady message_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

WorkerServiceImpl::~WorkerServiceImpl() { CloseStreams(); }

grpc::ServerWriteReactor<v1::ActionsReady>* WorkerServiceImpl::WatchActions(
    grpc::CallbackServerContext* context, const v1::WatchActionsRequest* request) {
  grpc::Status status = edge_->Authorize(*context);
  if (status.ok() && request->worker_id().empty()) {
    status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id: required");
  }
  auto stream = std::make_shared<ActionsStream>(this, request->worker_id());
  {
    absl::MutexLock lock(&mu_);
    if (status.ok() && closed_) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the coordinator is shutting down");
    }
    if (status.ok()) streams_.insert(stream);
  }
  stream->Hold(stream);
  if (status.ok()) {
    stream->Start();
  } else {
    stream->End(status);  // never registered: OnDone finds nothing to remove
  }
  return stream.get();
}

void WorkerServiceImpl::CloseStreams() {
  std::set<std::shared_ptr<ActionsStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    streams = streams_;
  }
  for (const auto& stream : streams) stream->End(grpc::Status::OK);
}

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
