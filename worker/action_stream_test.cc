#include "worker/action_stream.h"

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace gauntlet::worker {
namespace {

// A real WorkerService on loopback whose WatchActions sends `messages` wake-ups, then holds the
// stream open until the client cancels it (or fails it at once when `fail` is set).
class WakingService : public v1::WorkerService::Service {
 public:
  grpc::Status WatchActions(grpc::ServerContext* context, const v1::WatchActionsRequest* request,
                            grpc::ServerWriter<v1::ActionsReady>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      ++opened_;
      worker_id_ = request->worker_id();
      auto it = context->client_metadata().find("authorization");
      if (it != context->client_metadata().end()) {
        authorization_ = std::string(it->second.data(), it->second.size());
      }
      if (fail_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
    }
    for (int i = 0; i < messages_; ++i) writer->Write(v1::ActionsReady());
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::CANCELLED;
  }
  int opened() {
    absl::MutexLock lock(&mu_);
    return opened_;
  }
  void set_fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }

  const int messages_ = 2;
  absl::Mutex mu_;
  int opened_ = 0;
  bool fail_ = false;
  std::string worker_id_;
  std::string authorization_;
};

class ActionStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port_, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override { server_->Shutdown(); }

  WakingService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ActionStreamTest, CallsOnReadyForEveryMessageAndStopsWhenDestroyed) {
  absl::Mutex mu;
  int woken = 0;
  {
    ActionStream stream(channel_, "secret", "w-1", [&] {
      absl::MutexLock lock(&mu);
      ++woken;
    });
    absl::MutexLock lock(&mu);
    auto two = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return woken == 2; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&two), absl::Seconds(20)));
  }  // the destructor cancels the open stream; a hang here fails the test by its timeout
  absl::MutexLock lock(&service_.mu_);
  EXPECT_EQ(service_.worker_id_, "w-1");
  EXPECT_EQ(service_.authorization_, "Bearer secret");
}

TEST_F(ActionStreamTest, ReopensABrokenStream) {
  service_.set_fail(true);
  absl::Mutex mu;
  int woken = 0;
  ActionStream stream(
      channel_, "", "w-1",
      [&] {
        absl::MutexLock lock(&mu);
        ++woken;
      },
      absl::Milliseconds(10));
  // Fails twice, then the coordinator "is back" and the next attempt gets the wake-ups.
  while (service_.opened() < 2) absl::SleepFor(absl::Milliseconds(5));
  service_.set_fail(false);
  absl::MutexLock lock(&mu);
  auto two = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return woken == 2; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&two), absl::Seconds(20)));
  EXPECT_EQ(stream.received(), 2);
}

}  // namespace
}  // namespace gauntlet::worker
