#include "server/worker_wakeups.h"

#include "gtest/gtest.h"

namespace gauntlet {
namespace {

TEST(WorkerWakeupsTest, WakesOnlyTheNamedWorkersThatHaveAStream) {
  WorkerWakeups wakeups;
  int a = 0, b = 0;
  wakeups.Add("w-a", [&] { ++a; });
  wakeups.Add("w-b", [&] { ++b; });
  wakeups.Wake({"w-a", "w-unknown"});
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(wakeups.size(), 2);
}

TEST(WorkerWakeupsTest, ANewerStreamReplacesTheOldOneAndSurvivesTheOldOnesRemoval) {
  WorkerWakeups wakeups;
  int old_stream = 0, new_stream = 0;
  const uint64_t old_token = wakeups.Add("w", [&] { ++old_stream; });
  const uint64_t new_token = wakeups.Add("w", [&] { ++new_stream; });
  wakeups.Remove("w", old_token);  // the old stream's end arrives after the reconnect
  wakeups.Wake({"w"});
  EXPECT_EQ(old_stream, 0);
  EXPECT_EQ(new_stream, 1);
  wakeups.Remove("w", new_token);
  wakeups.Wake({"w"});
  EXPECT_EQ(new_stream, 1);
  EXPECT_EQ(wakeups.size(), 0);
}

}  // namespace
}  // namespace gauntlet
