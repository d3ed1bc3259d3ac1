#include "trainer/train/fence.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "trainer/train/exit_code.h"

namespace gauntlet {
namespace {

TEST(FenceTest, OnlyANewerAttemptsClaimFences) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/fence";
  std::remove(path.c_str());
  Fence fence(path, 2, std::chrono::milliseconds(0));
  EXPECT_TRUE(fence.Check().ok());  // no claim yet
  std::ofstream(path) << "2\n";
  EXPECT_TRUE(fence.Check().ok());  // its own
  std::ofstream(path) << "1\n";
  EXPECT_TRUE(fence.Check().ok());  // an older one cannot take it back
  std::ofstream(path) << "3\n";
  const absl::Status fenced = fence.Check();
  EXPECT_EQ(ExitCodeOf(fenced), ExitCode::kFenced);
  EXPECT_NE(fenced.message().find("attempt 3 now owns"), std::string::npos);
  EXPECT_TRUE(Fence(path, 0, std::chrono::milliseconds(0)).Check().ok());  // not run by a worker
}

TEST(FenceTest, ReadsAtMostOncePerPeriodUnlessForced) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/fence2";
  std::ofstream(path) << "1\n";
  Fence fence(path, 1, std::chrono::hours(1));
  EXPECT_TRUE(fence.Check().ok());
  std::ofstream(path) << "2\n";
  EXPECT_TRUE(fence.Check().ok());  // not re-read yet
  EXPECT_EQ(ExitCodeOf(fence.Check(/*force=*/true)), ExitCode::kFenced);
}

}  // namespace
}  // namespace gauntlet
