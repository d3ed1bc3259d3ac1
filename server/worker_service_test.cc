#include "server/worker_service.h"

#include <cstdlib>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"
#include "server/sqlite_store.h"

namespace gauntlet {
namespace {

// The coordinator's WorkerService over real gRPC on loopback: the wake-up stream.
class WorkerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string db = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", test_name(), ".db");
    std::remove(db.c_str());
    auto store = SqliteStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    metrics_ = std::make_unique<CoordinatorMetrics>("test");
    controller_ = std::make_unique<Controller>(
        store_.get(), metrics_.get(), &clock_,
        [](std::string_view yaml) -> absl::StatusOr<CompiledExperiment> {
          CompiledExperiment c;
          c.spec.set_name(std::string(yaml.substr(6)));
          c.spec.add_variants()->set_name("a");
          v1::Trial& t = c.trials.emplace_back();
          t.set_variant("a");
          t.mutable_spec()->mutable_resources()->set_gpus_per_trial(1);
          t.mutable_spec()->mutable_resources()->set_max_nodes(1);
          return c;
        },
        ControllerOptions{});
    ASSERT_TRUE(controller_->Recover().ok());
    edge_ = std::make_unique<RpcEdge>(metrics_.get(), "token");
    service_ = std::make_unique<WorkerServiceImpl>(controller_.get(), edge_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port_, 0);
    stub_ = v1::WorkerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    service_->CloseStreams();
    server_->Shutdown();
  }
  static std::string test_name() {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  void Authorize(grpc::ClientContext* context, const std::string& token = "token") {
    context->AddMetadata("authorization", "Bearer " + token);
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  }

  v1::HeartbeatResponse Beat() {
    grpc::ClientContext context;
    Authorize(&context);
    v1::HeartbeatRequest request;
    request.set_worker_id("w1");
    request.mutable_inventory()->set_address("w1.local");
    request.mutable_inventory()->set_rendezvous_port_base(29500);
    request.mutable_inventory()->add_gpus()->set_index(0);
    v1::HeartbeatResponse response;
    EXPECT_TRUE(stub_->Heartbeat(&context, request, &response).ok());
    return response;
  }

  FakeClock clock_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<RpcEdge> edge_;
  std::unique_ptr<WorkerServiceImpl> service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
};

TEST_F(WorkerServiceTest, APlacementReachesTheWorkerOverItsOpenStream) {
  grpc::ClientContext context;
  Authorize(&context);
  v1::WatchActionsRequest request;
  request.set_worker_id("w1");
  auto reader = stub_->WatchActions(&context, request);
  v1::ActionsReady ready;
  ASSERT_TRUE(reader->Read(&ready));  // one on opening: anything placed before is fetched now
  EXPECT_EQ(controller_->wakeups()->size(), 1);
  EXPECT_EQ(Beat().actions_size(), 0);

  v1::SubmitExperimentRequest submit;
  submit.set_spec_yaml("name: pushed");
  ASSERT_TRUE(controller_->Submit(submit).ok());
  controller_->Tick(clock_.Now());
  ASSERT_TRUE(reader->Read(&ready));  // the placement woke this worker
  const v1::HeartbeatResponse reply = Beat();
  ASSERT_EQ(reply.actions_size(), 1);
  EXPECT_EQ(reply.actions(0).launch().trial_id(), "exp-1-0");

  // A shutting-down coordinator ends the stream cleanly instead of holding Shutdown.
  service_->CloseStreams();
  EXPECT_FALSE(reader->Read(&ready));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(WorkerServiceTest, TheStreamIsRefusedWithoutTheTokenAndWithoutAWorkerId) {
  {
    grpc::ClientContext context;
    Authorize(&context, "wrong");
    v1::WatchActionsRequest request;
    request.set_worker_id("w1");
    auto reader = stub_->WatchActions(&context, request);
    v1::ActionsReady ready;
    EXPECT_FALSE(reader->Read(&ready));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    Authorize(&context);
    auto reader = stub_->WatchActions(&context, v1::WatchActionsRequest());
    v1::ActionsReady ready;
    EXPECT_FALSE(reader->Read(&ready));
    const grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), "worker_id: required");
  }
  EXPECT_EQ(controller_->wakeups()->size(), 0);
}

TEST_F(WorkerServiceTest, AClientThatGoesAwayIsForgotten) {
  {
    grpc::ClientContext context;
    Authorize(&context);
    v1::WatchActionsRequest request;
    request.set_worker_id("w1");
    auto reader = stub_->WatchActions(&context, request);
    v1::ActionsReady ready;
    ASSERT_TRUE(reader->Read(&ready));
    context.TryCancel();
    EXPECT_FALSE(reader->Read(&ready));
    reader->Finish();
  }
  // OnDone runs on a gRPC thread once the cancel reached the server.
  for (int i = 0; i < 3000 && controller_->wakeups()->size() != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(controller_->wakeups()->size(), 0);
}

}  // namespace
}  // namespace gauntlet
