#include "worker/launch_plan.h"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

namespace gauntlet::worker {
namespace {

std::string Env(const RankPlan& r, const std::string& name) {
  std::string found = "<unset>";
  int count = 0;
  for (const std::string& e : r.process.env) {
    if (e.compare(0, name.size() + 1, name + "=") == 0) {
      found = e.substr(name.size() + 1);
      ++count;
    }
  }
  return count > 1 ? "<duplicate>" : found;
}

// Trial t-1, attempt 2, world size 4: this worker hosts slice 1 (ranks 2 and 3, GPUs 5 and 7).
v1::LaunchTrial TwoNodeLaunch() {
  v1::LaunchTrial launch;
  launch.set_trial_id("exp-1-0");
  launch.set_attempt(2);
  launch.set_world_size(4);
  launch.set_slice_index(1);
  launch.mutable_spec()->mutable_data()->set_path("shakespeare/input.txt");
  v1::Placement* p = launch.mutable_placement();
  p->set_device_kind(v1::DEVICE_KIND_GPU);
  p->set_master_addr("node-a");
  p->set_master_port(29501);
  auto* a = p->add_slices();
  a->set_worker_id("node-a");
  a->add_devices(0);
  a->add_devices(1);
  a->set_first_rank(0);
  auto* b = p->add_slices();
  b->set_worker_id("node-b");
  b->add_devices(5);
  b->add_devices(7);
  b->set_first_rank(2);
  return launch;
}

LaunchConfig Config() {
  LaunchConfig config;
  config.work_dir = "/w";
  config.trainer_path = "/bin/trainer";
  config.data_root = "/data";
  config.base_env = {"PATH=/bin", "RANK=99", "HOME=/root"};
  return config;
}

TEST(PlanLaunchTest, TorchrunEnvironmentForEachLocalRank) {
  auto plan = PlanLaunch(TwoNodeLaunch(), Config());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->ranks.size(), 2u);
  const RankPlan& r = plan->ranks[1];
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(Env(r, "RANK"), "3");  // the worker's own RANK=99 is replaced, not duplicated
  EXPECT_EQ(Env(r, "LOCAL_RANK"), "1");
  EXPECT_EQ(Env(r, "WORLD_SIZE"), "4");
  EXPECT_EQ(Env(r, "LOCAL_WORLD_SIZE"), "2");
  EXPECT_EQ(Env(r, "MASTER_ADDR"), "node-a");
  EXPECT_EQ(Env(r, "MASTER_PORT"), "29501");
  EXPECT_EQ(Env(r, "CUDA_VISIBLE_DEVICES"), "7");
  EXPECT_EQ(Env(r, "NCCL_NVLS_ENABLE"), "0");
  EXPECT_EQ(Env(r, "HOME"), "/root");
  EXPECT_EQ(Env(r, "GAUNTLET_EVENTS_FILE"), "<unset>");  // only rank 0 reports events
  EXPECT_TRUE(plan->events_path.empty());
  EXPECT_EQ(r.dir, "/w/exp-1-0/attempt-2/rank-3");
  EXPECT_EQ(r.process.working_dir, r.dir);
  EXPECT_EQ(r.process.stderr_path, "/w/exp-1-0/attempt-2/rank-3/stderr.log");
  EXPECT_EQ(r.process.argv,
            (std::vector<std::string>{"/bin/trainer", "--spec", "/w/exp-1-0/trial.yaml"}));
}

TEST(PlanLaunchTest, RankZeroGetsTheEventsFileAndSpecIsResolved) {
  v1::LaunchTrial launch = TwoNodeLaunch();
  launch.set_slice_index(0);
  auto plan = PlanLaunch(launch, Config());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->events_path, "/w/exp-1-0/attempt-2/events.jsonl");
  EXPECT_EQ(Env(plan->ranks[0], "GAUNTLET_EVENTS_FILE"), plan->events_path);
  EXPECT_EQ(Env(plan->ranks[1], "GAUNTLET_EVENTS_FILE"), "<unset>");
  EXPECT_EQ(plan->run_dir, "/w/exp-1-0");
  // Checkpoints are local by default; a shared store is used when configured.
  EXPECT_EQ(plan->spec.run_dir(), "/w/checkpoints/exp-1-0");
  EXPECT_EQ(plan->fence_path, "/w/checkpoints/exp-1-0/fence");
  EXPECT_EQ(plan->spec.data().path(), "/data/shakespeare/input.txt");
  EXPECT_EQ(plan->spec.resources().device(), "gpu");
  LaunchConfig shared = Config();
  shared.checkpoint_store = "/mnt/ckpt";
  EXPECT_EQ(PlanLaunch(launch, shared)->spec.run_dir(), "/mnt/ckpt/exp-1-0");
}

TEST(PlanLaunchTest, DataPathsAreConfinedToTheDataRoots) {
  v1::LaunchTrial launch = TwoNodeLaunch();
  for (const char* bad : {"/etc/shadow", "/dataset/x", "../etc/shadow", "a/../../b"}) {
    launch.mutable_spec()->mutable_data()->set_path(bad);
    auto plan = PlanLaunch(launch, Config());
    ASSERT_FALSE(plan.ok()) << bad;
    EXPECT_NE(plan.status().message().find("launch.spec.data.path"), std::string::npos);
  }
  launch.mutable_spec()->mutable_data()->set_path("/data/sub/x.txt");
  EXPECT_TRUE(PlanLaunch(launch, Config()).ok());
}

TEST(PlanLaunchTest, AbsoluteDataPathAndOperatorNvlsSettingAreKept) {
  v1::LaunchTrial launch = TwoNodeLaunch();
  launch.mutable_spec()->mutable_data()->set_path("/corpus/x.txt");
  LaunchConfig config = Config();
  config.extra_data_roots = {"/corpus/"};
  config.base_env.push_back("NCCL_NVLS_ENABLE=1");
  auto plan = PlanLaunch(launch, config);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->spec.data().path(), "/corpus/x.txt");
  EXPECT_EQ(Env(plan->ranks[0], "NCCL_NVLS_ENABLE"), "1");
}

TEST(PlanLaunchTest, CpuTrialsSeeNoGpuAndTheDeviceKindIsThePlacements) {
  v1::LaunchTrial launch = TwoNodeLaunch();
  // The spec said nothing (or something else): the placement's kind decides.
  launch.mutable_spec()->mutable_resources()->set_device("gpu");
  launch.mutable_placement()->set_device_kind(v1::DEVICE_KIND_CPU);
  auto plan = PlanLaunch(launch, Config());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(Env(plan->ranks[0], "CUDA_VISIBLE_DEVICES"), "");
  EXPECT_EQ(plan->spec.resources().device(), "cpu");
}

TEST(PlanLaunchTest, CpuRanksGetAThreadCapUnlessTheOperatorSetOne) {
  v1::LaunchTrial launch = TwoNodeLaunch();
  LaunchConfig config = Config();
  config.threads_per_cpu_rank = 3;
  // GPU ranks are left alone.
  EXPECT_EQ(Env(PlanLaunch(launch, config)->ranks[0], "OMP_NUM_THREADS"), "<unset>");
  launch.mutable_placement()->set_device_kind(v1::DEVICE_KIND_CPU);
  EXPECT_EQ(Env(PlanLaunch(launch, config)->ranks[1], "OMP_NUM_THREADS"), "3");
  config.base_env.push_back("OMP_NUM_THREADS=8");
  EXPECT_EQ(Env(PlanLaunch(launch, config)->ranks[1], "OMP_NUM_THREADS"), "8");
}

TEST(PlanLaunchTest, InferenceCheckpointsResolveInTheCheckpointStore) {
  v1::LaunchTrial launch = TwoNodeLaunch();
  launch.mutable_spec()->mutable_inference()->set_checkpoint_path("exp-1-3");
  LaunchConfig config = Config();
  auto plan = PlanLaunch(launch, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->spec.inference().checkpoint_path(), "/w/checkpoints/exp-1-3");
  config.checkpoint_store = "/shared/ckpt";
  plan = PlanLaunch(launch, config);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->spec.inference().checkpoint_path(), "/shared/ckpt/exp-1-3");
  // Absolute paths only under the store or the data roots.
  launch.mutable_spec()->mutable_inference()->set_checkpoint_path("/data/runs/exp-9-0");
  EXPECT_TRUE(PlanLaunch(launch, config).ok());
  launch.mutable_spec()->mutable_inference()->set_checkpoint_path("/etc/exp-9-0");
  EXPECT_EQ(PlanLaunch(launch, config).status().message(),
            "launch.spec.inference.checkpoint_path: /etc/exp-9-0 is outside this worker's "
            "checkpoint store (/shared/ckpt) and data roots");
  launch.mutable_spec()->mutable_inference()->set_checkpoint_path("exp-1-3/../../x");
  EXPECT_NE(PlanLaunch(launch, config).status().message().find("\"..\""), std::string::npos);
}

TEST(PlanLaunchTest, BadActionsNameTheField) {
  auto error_of = [](void (*mutate)(v1::LaunchTrial&)) {
    v1::LaunchTrial launch = TwoNodeLaunch();
    mutate(launch);
    auto plan = PlanLaunch(launch, Config());
    return plan.ok() ? std::string("ok") : std::string(plan.status().message());
  };
  EXPECT_NE(error_of([](v1::LaunchTrial& l) { l.set_trial_id("../etc"); }).find("trial_id"),
            std::string::npos);
  EXPECT_NE(error_of([](v1::LaunchTrial& l) { l.set_slice_index(2); }).find("slice_index"),
            std::string::npos);
  EXPECT_NE(error_of([](v1::LaunchTrial& l) { l.set_world_size(3); }).find("world_size"),
            std::string::npos);
  EXPECT_NE(error_of([](v1::LaunchTrial& l) {
              l.mutable_placement()->set_master_port(0);
            }).find("master_port"),
            std::string::npos);
  EXPECT_NE(error_of([](v1::LaunchTrial& l) {
              l.mutable_placement()->clear_device_kind();
            }).find("placement.device_kind"),
            std::string::npos);
}

}  // namespace
}  // namespace gauntlet::worker
