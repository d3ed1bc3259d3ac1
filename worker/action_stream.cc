#include "worker/action_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace gauntlet::worker {

ActionStream::ActionStream(std::shared_ptr<grpc::Channel> channel, std::string auth_token,
                           std::string worker_id, std::function<void()> on_ready,
                           absl::Duration retry)
    : stub_(v1::WorkerService::NewStub(std::move(channel))),
      auth_token_(std::move(auth_token)),
      worker_id_(std::move(worker_id)),
      on_ready_(std::move(on_ready)),
      retry_(retry),
      thread_([this] { Loop(); }) {}

ActionStream::~ActionStream() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  thread_.join();
}

int ActionStream::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

void ActionStream::Loop() {
  v1::WatchActionsRequest request;
  request.set_worker_id(worker_id_);
  while (true) {
    grpc::ClientContext context;
    if (!auth_token_.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", auth_token_));
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      context_ = &context;
    }
    std::unique_ptr<grpc::ClientReader<v1::ActionsReady>> reader =
        stub_->WatchActions(&context, request);
    v1::ActionsReady ready;
    while (reader->Read(&ready)) {
      {
        absl::MutexLock lock(&mu_);
        ++received_;
      }
      on_ready_();
    }
    reader->Finish();  // the heartbeat reports errors; this stream only shortens waits
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), retry_);
    if (stopping_) return;
  }
}

}  // namespace gauntlet::worker
