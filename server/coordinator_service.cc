#include "server/coordinator_service.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

// How often streaming RPCs wake to notice a cancelled client or server shutdown.
constexpr absl::Duration kStreamPoll = absl::Milliseconds(250);

// The last `n` lines of `chunks` as one chunk.
v1::LogChunk TailOf(const std::vector<StoredLogChunk>& chunks, int n) {
  std::string text;
  for (const StoredLogChunk& c : chunks) text += c.chunk.text();
  // Walk back over n newlines, not counting the one that ends the last line.
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  int lines = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++lines == n) break;
    --pos;
  }
  v1::LogChunk chunk = chunks.back().chunk;
  chunk.set_text(text.substr(pos));
  return chunk;
}

}  // namespace

grpc::Status CoordinatorService::SubmitExperiment(grpc::ServerContext* context,
                                                  const v1::SubmitExperimentRequest* request,
                                                  v1::SubmitExperimentResponse* response) {
  return edge_->Handle("SubmitExperiment", context, [&] {
    absl::StatusOr<v1::Experiment> result = controller_->Submit(*request);
    if (result.ok()) *response->mutable_experiment() = *std::move(result);
    return ToGrpcStatus(result.status());
  });
}

grpc::Status CoordinatorService::GetExperiment(grpc::ServerContext* context,
                                               const v1::GetExperimentRequest* request,
                                               v1::Experiment* response) {
  return edge_->Handle("GetExperiment", context, [&] {
    absl::StatusOr<v1::Experiment> result = controller_->Get(*request);
    if (result.ok()) *response = *std::move(result);
    return ToGrpcStatus(result.status());
  });
}

grpc::Status CoordinatorService::ListExperiments(grpc::ServerContext* context,
                                                 const v1::ListExperimentsRequest* request,
                                                 v1::ListExperimentsResponse* response) {
  return edge_->Handle("ListExperiments", context, [&] {
    absl::StatusOr<v1::ListExperimentsResponse> result = controller_->List(*request);
    if (result.ok()) *response = *std::move(result);
    return ToGrpcStatus(result.status());
  });
}

grpc::Status CoordinatorService::CancelExperiment(grpc::ServerContext* context,
                                                  const v1::CancelExperimentRequest* request,
                                                  v1::Experiment* response) {
  return edge_->Handle("CancelExperiment", context, [&] {
    absl::StatusOr<v1::Experiment> result = controller_->Cancel(*request);
    if (result.ok()) *response = *std::move(result);
    return ToGrpcStatus(result.status());
  });
}

grpc::Status CoordinatorService::CompareExperiment(grpc::ServerContext* context,
                                                   const v1::CompareExperimentRequest* request,
                                                   v1::CompareExperimentResponse* response) {
  return edge_->Handle("CompareExperiment", context, [&] {
    absl::StatusOr<v1::CompareExperimentResponse> result = controller_->Compare(*request);
    if (result.ok()) *response = *std::move(result);
    return ToGrpcStatus(result.status());
  });
}

grpc::Status CoordinatorService::WatchExperiment(grpc::ServerContext* context,
                                                 const v1::WatchExperimentRequest* request,
                                                 grpc::ServerWriter<v1::WatchEvent>* writer) {
  return edge_->Handle("WatchExperiment", context, [&] {
    v1::WatchEvent first;
    absl::StatusOr<std::shared_ptr<WatchQueue>> queue =
        controller_->Watch(*request, first.mutable_snapshot());
    if (!queue.ok()) return ToGrpcStatus(queue.status());
    if (!writer->Write(first)) return grpc::Status::OK;
    while (!context->IsCancelled()) {
      std::optional<v1::WatchEvent> event = (*queue)->Pop(kStreamPoll);
      if (event.has_value()) {
        const bool finished = event->has_finished();
        if (!writer->Write(*event) || finished) break;
      } else if ((*queue)->closed_and_drained()) {
        break;
      }
    }
    return grpc::Status::OK;
  });
}

grpc::Status CoordinatorService::StreamTrialLogs(grpc::ServerContext* context,
                                                 const v1::StreamTrialLogsRequest* request,
                                                 grpc::ServerWriter<v1::LogChunk>* writer) {
  return edge_->Handle("StreamTrialLogs", context, [&] {
    if (request->trial_id().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "trial_id: required");
    }
    if (request->rank() < 0 || request->tail_lines() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          request->rank() < 0 ? "rank: must be >= 0" : "tail_lines: must be >= 0");
    }
    // Version first, then read: a chunk arriving in between bumps the version we wait on.
    int64_t version = controller_->AwaitLogs(-1, absl::ZeroDuration());
    absl::StatusOr<bool> finished = controller_->TrialFinished(request->trial_id());
    if (!finished.ok()) return ToGrpcStatus(finished.status());
    absl::StatusOr<std::vector<StoredLogChunk>> chunks =
        controller_->ReadLogs(request->trial_id(), request->rank(), 0);
    if (!chunks.ok()) return ToGrpcStatus(chunks.status());
    int64_t last_id = chunks->empty() ? 0 : chunks->back().id;
    if (!chunks->empty()) {
      if (request->tail_lines() > 0) {
        if (!writer->Write(TailOf(*chunks, request->tail_lines()))) return grpc::Status::OK;
      } else {
        for (const StoredLogChunk& c : *chunks) {
          if (!writer->Write(c.chunk)) return grpc::Status::OK;
        }
      }
    }
    if (!request->follow()) return grpc::Status::OK;
    while (!*finished && !context->IsCancelled()) {
      version = controller_->AwaitLogs(version, kStreamPoll);
      finished = controller_->TrialFinished(request->trial_id());
      if (!finished.ok()) return ToGrpcStatus(finished.status());
      chunks = controller_->ReadLogs(request->trial_id(), request->rank(), last_id);
      if (!chunks.ok()) return ToGrpcStatus(chunks.status());
      for (const StoredLogChunk& c : *chunks) {
        if (!writer->Write(c.chunk)) return grpc::Status::OK;
        last_id = c.id;
      }
    }
    return grpc::Status::OK;
  });
}

}  // namespace gauntlet
