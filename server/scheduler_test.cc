#include "server/scheduler.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;

WorkerSnapshot Gpus(const std::string& id, int n, std::set<int> busy = {}) {
  WorkerSnapshot w;
  w.id = id;
  w.address = id + ".local";
  for (int i = 0; i < n; ++i) w.gpus.push_back(i);
  w.busy_gpus = std::move(busy);
  return w;
}

WorkerSnapshot Cpus(const std::string& id, int slots) {
  WorkerSnapshot w;
  w.id = id;
  w.address = id + ".local";
  w.cpu_slots = slots;
  return w;
}

PendingTrial Trial(const std::string& id, int devices, int max_nodes = 1, int priority = 0,
                   const std::string& device = "") {
  static int64_t sequence = 0;
  PendingTrial t;
  t.id = id;
  t.devices = devices;
  t.max_nodes = max_nodes;
  t.priority = priority;
  t.device = device;
  t.sequence = ++sequence;
  return t;
}

// "w1:0,1" per slice, joined with " + ".
std::string Describe(const v1::Placement& p) {
  std::vector<std::string> slices;
  for (const v1::PlacementSlice& s : p.slices()) {
    slices.push_back(absl::StrCat(s.worker_id(), ":", absl::StrJoin(s.devices(), ","), "@r",
                                  s.first_rank()));
  }
  return absl::StrJoin(slices, " + ");
}

struct Case {
  std::string name;
  std::vector<WorkerSnapshot> workers;
  std::vector<PendingTrial> pending;
  // trial id -> expected placement ("" means it waits).
  std::map<std::string, std::string> expected;
};

class ScheduleTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(ScheduleTableTest, Places) {
  const Case& c = GetParam();
  ClusterSnapshot cluster{c.workers};
  ScheduleResult result = Schedule(cluster, c.pending);
  for (const auto& [trial, want] : c.expected) {
    auto it = result.placements.find(trial);
    if (want.empty()) {
      EXPECT_EQ(it, result.placements.end()) << trial << " placed: " << Describe(it->second);
      EXPECT_TRUE(result.waiting.count(trial)) << trial << " has no wait reason";
    } else {
      ASSERT_NE(it, result.placements.end()) << trial << " waits: " << result.waiting[trial];
      EXPECT_EQ(Describe(it->second), want) << trial;
    }
  }
  EXPECT_EQ(result.placements.size() + result.waiting.size(), c.pending.size());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ScheduleTableTest,
    ::testing::Values(
        Case{"single_gpu_lowest_index", {Gpus("a", 2)}, {Trial("t1", 1)}, {{"t1", "a:0@r0"}}},
        Case{"best_fit_prefers_fuller_worker",
             {Gpus("big", 8), Gpus("small", 4, {0, 1})},
             {Trial("t1", 2)},
             {{"t1", "small:2,3@r0"}}},
        Case{"gang_all_or_nothing",
             {Gpus("a", 4, {0, 1, 2})},
             {Trial("t1", 2)},
             {{"t1", ""}}},
        Case{"multi_node_fewest_workers",
             {Gpus("a", 4), Gpus("b", 4), Gpus("c", 2)},
             {Trial("t1", 6, 2)},
             {{"t1", "a:0,1,2,3@r0 + c:0,1@r4"}}},
        Case{"multi_node_respects_max_nodes",
             {Gpus("a", 2), Gpus("b", 2), Gpus("c", 2)},
             {Trial("t1", 6, 2)},
             {{"t1", ""}}},
        Case{"single_node_trial_never_spans",
             {Gpus("a", 2), Gpus("b", 2)},
             {Trial("t1", 3, 1)},
             {{"t1", ""}}},
        Case{"fifo_within_priority_with_backfill",
             {Gpus("a", 2)},
             {Trial("big", 4), Trial("small", 1), Trial("small2", 1)},
             {{"big", ""}, {"small", "a:0@r0"}, {"small2", "a:1@r0"}}},
        Case{"higher_priority_first",
             {Gpus("a", 1)},
             {Trial("low", 1, 1, 0), Trial("high", 1, 1, 5)},
             {{"high", "a:0@r0"}, {"low", ""}}},
        Case{"waiting_high_priority_blocks_lower",
             {Gpus("a", 2)},
             {Trial("high", 4, 1, 5), Trial("low", 1, 1, 0)},
             {{"high", ""}, {"low", ""}}},
        Case{"gpu_wait_does_not_block_cpu",
             {Gpus("g", 1, {0}), Cpus("c", 2)},
             {Trial("gpu", 1, 1, 5, "gpu"), Trial("cpu", 2, 1, 0, "cpu")},
             {{"gpu", ""}, {"cpu", "c:0,1@r0"}}},
        Case{"cpu_slots_are_devices",
             {Cpus("c1", 1), Cpus("c2", 3)},
             {Trial("t1", 2, 1, 0, "cpu"), Trial("t2", 2, 1, 0, "cpu")},
             {{"t1", "c2:0,1@r0"}, {"t2", ""}}},
        Case{"default_device_is_cpu_without_gpus",
             {Cpus("c", 2)},
             {Trial("t1", 1)},
             {{"t1", "c:0@r0"}}},
        Case{"packs_successive_trials",
             {Gpus("a", 4), Gpus("b", 4)},
             {Trial("t1", 1), Trial("t2", 2), Trial("t3", 1), Trial("t4", 4)},
             {{"t1", "a:0@r0"}, {"t2", "a:1,2@r0"}, {"t3", "a:3@r0"}, {"t4", "b:0,1,2,3@r0"}}}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(ScheduleTest, NoWorkersReason) {
  ScheduleResult result = Schedule({}, {Trial("t1", 1)});
  EXPECT_TRUE(result.placements.empty());
  EXPECT_EQ(result.waiting["t1"], "no workers registered");
}

TEST(ScheduleTest, WaitReasonsSayWhy) {
  ScheduleResult result =
      Schedule({{Gpus("a", 2)}}, {Trial("high", 4, 1, 5), Trial("low", 1, 1, 0)});
  EXPECT_THAT(result.waiting["high"], HasSubstr("waiting for 4 free gpu device(s)"));
  EXPECT_THAT(result.waiting["high"], HasSubstr("most free on one worker: 2"));
  EXPECT_THAT(result.waiting["low"], HasSubstr("behind higher-priority trial high"));
}

TEST(ScheduleTest, MasterIsRankZeroWorkerWithUniquePort) {
  WorkerSnapshot a = Gpus("a", 4);
  a.rendezvous_port_base = 29500;
  a.busy_ports = {29500};
  ScheduleResult result = Schedule({{a}}, {Trial("t1", 1), Trial("t2", 1)});
  ASSERT_EQ(result.placements.size(), 2u);
  EXPECT_EQ(result.placements["t1"].master_addr(), "a.local");
  EXPECT_EQ(result.placements["t1"].master_port(), 29501);
  EXPECT_EQ(result.placements["t2"].master_port(), 29502);
}

TEST(ScheduleTest, IsPure) {
  ClusterSnapshot cluster{{Gpus("a", 2), Gpus("b", 2)}};
  std::vector<PendingTrial> pending = {Trial("t1", 3, 2), Trial("t2", 1)};
  ScheduleResult first = Schedule(cluster, pending);
  ScheduleResult second = Schedule(cluster, pending);
  ASSERT_EQ(first.placements.size(), second.placements.size());
  for (const auto& [id, p] : first.placements) {
    EXPECT_EQ(Describe(p), Describe(second.placements[id]));
  }
  EXPECT_TRUE(cluster.workers[0].busy_gpus.empty());
}

}  // namespace
}  // namespace gauntlet
