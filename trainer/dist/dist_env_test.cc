#include "trainer/dist/dist_env.h"

#include <map>

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

absl::StatusOr<DistEnv> From(std::map<std::string, std::string> vars) {
  return DistEnvFrom([&vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

TEST(DistEnvTest, UnsetMeansSingleProcess) {
  absl::StatusOr<DistEnv> env = From({});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->rank, 0);
  EXPECT_EQ(env->world_size, 1);
}

TEST(DistEnvTest, ReadsTorchrunVariables) {
  absl::StatusOr<DistEnv> env = From({{"RANK", "3"},
                                      {"LOCAL_RANK", "1"},
                                      {"WORLD_SIZE", "4"},
                                      {"MASTER_ADDR", "10.0.0.2"},
                                      {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->rank, 3);
  EXPECT_EQ(env->local_rank, 1);
  EXPECT_EQ(env->world_size, 4);
  EXPECT_EQ(env->master_addr, "10.0.0.2");
  EXPECT_EQ(env->master_port, 29500);
}

TEST(DistEnvTest, ErrorsNameTheVariable) {
  EXPECT_NE(From({{"RANK", "x"}}).status().message().find("RANK"), std::string::npos);
  EXPECT_NE(From({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}})
                .status()
                .message()
                .find("RANK: 2"),
            std::string::npos);
  EXPECT_NE(From({{"WORLD_SIZE", "2"}}).status().message().find("MASTER_PORT"),
            std::string::npos);
  EXPECT_NE(From({{"WORLD_SIZE", "0"}}).status().message().find("WORLD_SIZE"), std::string::npos);
}

}  // namespace
}  // namespace gauntlet
