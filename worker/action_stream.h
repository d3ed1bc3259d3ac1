#ifndef GAUNTLET_WORKER_ACTION_STREAM_H_
#define GAUNTLET_WORKER_ACTION_STREAM_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gauntlet/v1/worker.grpc.pb.h"

namespace gauntlet::worker {

// Holds WorkerService.WatchActions open for one worker on its own thread and calls `on_ready`
// for every message (the coordinator has a launch or a stop waiting), so the agent heartbeats
// at once instead of at its next interval. A broken stream (coordinator restart) is reopened
// after `retry`. Heartbeats alone still work without it; this only cuts the wait.
class ActionStream {
 public:
  // `auth_token` empty: no authorization metadata.
  ActionStream(std::shared_ptr<grpc::Channel> channel, std::string auth_token,
               std::string worker_id, std::function<void()> on_ready,
               absl::Duration retry = absl::Seconds(1));
  // Cancels the open stream and joins the thread.
  ~ActionStream();

  // Messages received so far (for tests and logs).
  int received() const;

 private:
  void Loop();

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const std::string auth_token_;
  const std::string worker_id_;
  const std::function<void()> on_ready_;
  const absl::Duration retry_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  int received_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_ACTION_STREAM_H_
