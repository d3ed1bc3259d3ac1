#include "trainer/checkpoint/checkpoint.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/" + name;
  fs::remove_all(dir);
  return dir;
}

Checkpoint Make(int64_t step) {
  Checkpoint c;
  c.step = step;
  c.tensors["model/w"] = torch::arange(6, torch::kFloat32).reshape({2, 3}) * step;
  c.tensors["rng/cpu"] = torch::ones({5}, torch::kUInt8);
  c.ints["sampler/draws"] = 1000 + step;
  c.doubles["train_seconds"] = 0.25 * step;
  return c;
}

TEST(CheckpointDirTest, RoundTripsEveryField) {
  CheckpointDir dir(TempDir("roundtrip"), 2);
  EXPECT_FALSE(dir.LoadLatest()->has_value());
  ASSERT_TRUE(dir.Save(Make(3)).ok());
  absl::StatusOr<Checkpoint> loaded = dir.Load(3);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->step, 3);
  EXPECT_TRUE(torch::equal(loaded->tensors.at("model/w"), Make(3).tensors.at("model/w")));
  EXPECT_EQ(loaded->tensors.at("rng/cpu").scalar_type(), torch::kUInt8);
  EXPECT_EQ(loaded->ints.at("sampler/draws"), 1003);
  EXPECT_DOUBLE_EQ(loaded->doubles.at("train_seconds"), 0.75);
}

TEST(CheckpointDirTest, KeepsTheLastKAndLoadsTheLatest) {
  CheckpointDir dir(TempDir("keep"), 2);
  for (int64_t step : {10, 20, 30, 40}) ASSERT_TRUE(dir.Save(Make(step)).ok());
  EXPECT_EQ(*dir.ListSteps(), (std::vector<int64_t>{30, 40}));
  absl::StatusOr<std::optional<Checkpoint>> latest = dir.LoadLatest();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->step, 40);
  // Re-saving an existing step (a resumed run) replaces it.
  ASSERT_TRUE(dir.Save(Make(40)).ok());
  EXPECT_EQ(*dir.ListSteps(), (std::vector<int64_t>{30, 40}));
}

TEST(CheckpointDirTest, IgnoresPartialWritesAndCleansThemUp) {
  const std::string path = TempDir("partial");
  CheckpointDir dir(path, 3);
  ASSERT_TRUE(dir.Save(Make(1)).ok());
  // What a writer killed mid-save leaves: a temporary directory, never a step_ one.
  fs::create_directories(path + "/.tmp-step_000000002-999");
  std::ofstream(path + "/.tmp-step_000000002-999/checkpoint.pt") << "trunc";
  // A step directory without its file is not complete either.
  fs::create_directories(path + "/step_000000005");
  EXPECT_EQ(*dir.ListSteps(), (std::vector<int64_t>{1}));
  ASSERT_TRUE(dir.Save(Make(2)).ok());
  EXPECT_FALSE(fs::exists(path + "/.tmp-step_000000002-999"));
  EXPECT_EQ(*dir.ListSteps(), (std::vector<int64_t>{1, 2}));
}

TEST(CheckpointDirTest, CorruptFileIsDataLoss) {
  const std::string path = TempDir("corrupt");
  fs::create_directories(path + "/step_000000007");
  std::ofstream(path + "/step_000000007/checkpoint.pt") << "not a pickle";
  CheckpointDir dir(path, 2);
  EXPECT_EQ(dir.LoadLatest().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(dir.Load(8).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace gauntlet
