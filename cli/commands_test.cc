#include "cli/commands.h"

#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "gauntlet/v1/coordinator.grpc.pb.h"

namespace gauntlet::cli {
namespace {

// A real Coordinator service on a loopback port with canned answers, so the CLI is tested
// through real gRPC: exit codes, messages, streaming.
class FakeCoordinator : public v1::Coordinator::Service {
 public:
  grpc::Status SubmitExperiment(grpc::ServerContext* context,
                                const v1::SubmitExperimentRequest* request,
                                v1::SubmitExperimentResponse* response) override {
    RecordAuth(context);
    if (request->spec_yaml().find("lr: -1") != std::string::npos) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "line 7, column 5: train.optimizer.lr: must be > 0 (got -1)");
    }
    response->mutable_experiment()->set_id("exp-3");
    response->mutable_experiment()->mutable_spec()->set_name("tiny");
    response->mutable_experiment()->add_trials()->set_variant("standard");
    return grpc::Status::OK;
  }
  grpc::Status GetExperiment(grpc::ServerContext*, const v1::GetExperimentRequest* request,
                             v1::Experiment* response) override {
    if (request->experiment() != "exp-3") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "experiment '" + request->experiment() + "' not found");
    }
    response->set_id("exp-3");
    response->set_state(v1::EXPERIMENT_STATE_RUNNING);
    return grpc::Status::OK;
  }
  grpc::Status CancelExperiment(grpc::ServerContext*, const v1::CancelExperimentRequest*,
                                v1::Experiment*) override {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "exp-3 already completed");
  }
  grpc::Status WatchExperiment(grpc::ServerContext*, const v1::WatchExperimentRequest* request,
                               grpc::ServerWriter<v1::WatchEvent>* writer) override {
    v1::WatchEvent event;
    v1::Experiment* e = event.mutable_snapshot();
    e->set_id(request->experiment());
    e->set_state(v1::EXPERIMENT_STATE_RUNNING);
    v1::Trial* t = e->add_trials();
    t->set_id("exp-3-0");
    t->set_variant("standard");
    t->set_state(v1::TRIAL_STATE_RUNNING);
    t->mutable_spec()->mutable_budget()->set_steps(100);
    writer->Write(event);
    event.mutable_metric()->set_trial_id("exp-3-0");
    event.mutable_metric()->set_name("val_loss");
    event.mutable_metric()->set_value(3.25);
    event.mutable_metric()->set_step(50);
    event.mutable_metric()->set_train_seconds(10);
    writer->Write(event);
    v1::Trial* update = event.mutable_trial_update();
    update->set_id("exp-3-0");
    update->set_variant("standard");
    update->set_state(v1::TRIAL_STATE_FAILED);
    update->set_status_message("loss is NaN");
    writer->Write(event);
    v1::Experiment* finished = event.mutable_finished();
    finished->set_id(request->experiment());
    finished->set_state(v1::EXPERIMENT_STATE_FAILED);
    *finished->add_trials() = *update;
    writer->Write(event);
    return grpc::Status::OK;
  }
  grpc::Status StreamTrialLogs(grpc::ServerContext*, const v1::StreamTrialLogsRequest* request,
                               grpc::ServerWriter<v1::LogChunk>* writer) override {
    v1::LogChunk chunk;
    chunk.set_text("rank " + std::to_string(request->rank()) + " follow " +
                   std::to_string(request->follow()) + "\n");
    writer->Write(chunk);
    chunk.set_text("step 10/100 | loss 3.4\n");
    writer->Write(chunk);
    return grpc::Status::OK;
  }
  grpc::Status CompareExperiment(grpc::ServerContext*, const v1::CompareExperimentRequest* request,
                                 v1::CompareExperimentResponse* response) override {
    response->set_experiment_id("exp-3");
    response->set_baseline("standard");
    v1::VariantSummary* v = response->add_variants();
    v->set_variant("standard");
    v->set_n(request->wallclock_points_size());
    v->set_val_loss_mean(3.5);
    v1::TrialCurve* c = response->add_curves();
    c->set_variant("standard");
    for (int i = 1; i <= 3; ++i) {
      c->add_train_seconds(i * 10.0);
      c->add_tokens(i * 1000);
      c->add_val_loss(4.0 - 0.2 * i);
    }
    return grpc::Status::OK;
  }

  std::string authorization() {
    absl::MutexLock lock(&mu_);
    return authorization_;
  }

 private:
  void RecordAuth(grpc::ServerContext* context) {
    absl::MutexLock lock(&mu_);
    auto it = context->client_metadata().find("authorization");
    if (it != context->client_metadata().end()) {
      authorization_ = std::string(it->second.data(), it->second.size());
    }
  }
  absl::Mutex mu_;
  std::string authorization_;
};

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    context_.default_coordinator = "127.0.0.1:" + std::to_string(port);
    context_.in = &in_;
    context_.out = &out_;
    context_.err = &err_;
  }
  void TearDown() override { server_->Shutdown(); }

  int Run(std::vector<std::string> args) { return RunCli(args, context_); }

  FakeCoordinator service_;
  std::unique_ptr<grpc::Server> server_;
  CliContext context_;
  std::istringstream in_;
  std::ostringstream out_, err_;
};

TEST_F(CommandsTest, SubmitFromStdinSendsTheTokenAndPrintsTheId) {
  in_.str("name: tiny\n");
  context_.token = "t0k";
  EXPECT_EQ(Run({"submit", "-"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "exp-3  tiny  1 trials\n");
  EXPECT_EQ(service_.authorization(), "Bearer t0k");
}

TEST_F(CommandsTest, InvalidSpecExitsThreeWithTheFieldMessage) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/bad.yaml";
  FILE* f = fopen(path.c_str(), "w");
  fputs("train:\n  optimizer:\n    lr: -1\n", f);
  fclose(f);
  EXPECT_EQ(Run({"submit", path}), 3);
  EXPECT_NE(err_.str().find("line 7, column 5: train.optimizer.lr: must be > 0"),
            std::string::npos)
      << err_.str();
}

TEST_F(CommandsTest, UnknownExperimentExitsFour) {
  EXPECT_EQ(Run({"describe", "exp-404"}), 4);
  EXPECT_NE(err_.str().find("experiment 'exp-404' not found"), std::string::npos);
}

TEST_F(CommandsTest, FailedPreconditionHasItsOwnCode) {
  EXPECT_EQ(Run({"cancel", "exp-3"}), 7);
  EXPECT_NE(err_.str().find("already completed"), std::string::npos);
}

TEST_F(CommandsTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_EQ(Run({"frobnicate"}), 2);
  EXPECT_EQ(Run({"describe"}), 2);
  EXPECT_EQ(Run({"logs", "exp-3-0", "--bogus"}), 2);
  EXPECT_NE(err_.str().find("unknown flag --bogus"), std::string::npos) << err_.str();
  EXPECT_EQ(Run({"compare", "exp-3", "--format", "xml"}), 2);
  EXPECT_EQ(Run({"logs", "exp-3-0", "--rank", "x"}), 2);
}

TEST_F(CommandsTest, HelpDocumentsTheExitCodes) {
  EXPECT_EQ(Run({"help"}), 0);
  EXPECT_NE(out_.str().find("3  invalid spec"), std::string::npos);
  EXPECT_NE(out_.str().find("5  watch: the experiment finished FAILED or CANCELED"),
            std::string::npos);
}

TEST_F(CommandsTest, UnreachableCoordinatorExitsOne) {
  EXPECT_EQ(Run({"--coordinator", "127.0.0.1:1", "describe", "exp-3"}), 1);
  EXPECT_NE(err_.str().find("unavailable"), std::string::npos) << err_.str();
}

TEST_F(CommandsTest, WatchPrintsPlainProgressAndExitsFiveOnFailure) {
  EXPECT_EQ(Run({"watch", "exp-3"}), 5);
  const std::string out = out_.str();
  EXPECT_NE(out.find("exp-3-0      standard         [##########..........]  50% step 50/100"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("exp-3-0 standard: running -> failed (loss is NaN)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("exp-3 finished: failed"), std::string::npos) << out;
  EXPECT_EQ(out.find("\033["), std::string::npos);  // no cursor movement off a terminal
}

TEST_F(CommandsTest, WatchRedrawsInPlaceOnATerminal) {
  context_.stdout_is_tty = true;
  EXPECT_EQ(Run({"watch", "exp-3"}), 5);
  EXPECT_NE(out_.str().find("\033[2F"), std::string::npos);  // back over header + 1 trial
}

TEST_F(CommandsTest, LogsPassRankAndFollow) {
  EXPECT_EQ(Run({"logs", "exp-3-0", "-f", "--rank", "1"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "rank 1 follow 1\nstep 10/100 | loss 3.4\n");
}

TEST_F(CommandsTest, CompareSendsWallclockPointsAndFormats) {
  EXPECT_EQ(Run({"compare", "exp-3", "--at", "60,120", "--format=csv"}), 0) << err_.str();
  EXPECT_NE(out_.str().find("\nstandard,,0,2,"), std::string::npos) << out_.str();
}

TEST_F(CommandsTest, ComparePlotRunsTheShippedScript) {
  context_.plot_script =
      std::string(std::getenv("TEST_SRCDIR")) + "/gauntlet/cli/plot_curves.py";
  const std::string png = std::string(std::getenv("TEST_TMPDIR")) + "/curves.png";
  EXPECT_EQ(Run({"compare", "exp-3", "--plot", png}), 0) << err_.str();
  struct stat st;
  ASSERT_EQ(stat(png.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 1000);
  // A missing script is a clear error, not a crash.
  context_.plot_script = "/nonexistent/plot_curves.py";
  EXPECT_EQ(Run({"compare", "exp-3", "--plot", png}), 1);
  EXPECT_NE(err_.str().find("GAUNTLET_PLOT_SCRIPT"), std::string::npos);
}

}  // namespace
}  // namespace gauntlet::cli
