#include "worker/coordinator_client.h"

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"

namespace gauntlet::worker {
namespace {

// A real WorkerService on a loopback port that records what it received.
class RecordingService : public v1::WorkerService::Service {
 public:
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    Record(context);
    response->set_interval_seconds(2);
    response->add_actions()->mutable_stop()->set_trial_id(request->worker_id() + "-trial");
    return grpc::Status::OK;
  }
  grpc::Status ReportTrialExit(grpc::ServerContext* context,
                               const v1::ReportTrialExitRequest* request,
                               v1::ReportTrialExitResponse*) override {
    Record(context);
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown trial " + request->trial_id());
  }

  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }

 private:
  void Record(grpc::ServerContext* context) {
    absl::MutexLock lock(&mu_);
    auto it = context->client_metadata().find("authorization");
    authorization_ = it == context->client_metadata().end()
                         ? "<none>"
                         : std::string(it->second.data(), it->second.size());
  }
  absl::Mutex mu_;
  std::string authorization_;
};

class CoordinatorClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  std::shared_ptr<grpc::Channel> Channel() {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                               grpc::InsecureChannelCredentials());
  }

  RecordingService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(CoordinatorClientTest, HeartbeatRoundTripsWithBearerToken) {
  GrpcCoordinatorClient client(Channel(), "s3cret");
  v1::HeartbeatRequest request;
  request.set_worker_id("node-a");
  auto response = client.Heartbeat(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->interval_seconds(), 2);
  ASSERT_EQ(response->actions_size(), 1);
  EXPECT_EQ(response->actions(0).stop().trial_id(), "node-a-trial");
  EXPECT_EQ(service_.authorization(), "Bearer s3cret");
}

TEST_F(CoordinatorClientTest, NoTokenSendsNoAuthorization) {
  GrpcCoordinatorClient client(Channel(), "");
  ASSERT_TRUE(client.Heartbeat(v1::HeartbeatRequest()).ok());
  EXPECT_EQ(service_.authorization(), "<none>");
}

TEST_F(CoordinatorClientTest, ServerErrorsKeepTheirCodeAndMessage) {
  GrpcCoordinatorClient client(Channel(), "");
  v1::ReportTrialExitRequest request;
  request.set_trial_id("exp-9-0");
  absl::Status status = client.ReportTrialExit(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "unknown trial exp-9-0");
  // Not overridden by the service: the generated base answers UNIMPLEMENTED.
  EXPECT_EQ(client.ReportLogs(v1::ReportLogsRequest()).code(), absl::StatusCode::kUnimplemented);
}

TEST(CoordinatorClientNoServerTest, UnreachableCoordinatorIsUnavailableNotAHang) {
  // Port 1 on loopback: nothing listens there.
  GrpcCoordinatorClient client(
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()), "",
      absl::Seconds(2));
  auto response = client.Heartbeat(v1::HeartbeatRequest());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
}

}  // namespace
}  // namespace gauntlet::worker
