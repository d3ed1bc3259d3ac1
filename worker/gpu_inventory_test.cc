#include "worker/gpu_inventory.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace gauntlet::worker {
namespace {

std::string WriteScript(const std::string& name, const std::string& body) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  std::ofstream(path) << "#!/bin/sh\n" << body;
  chmod(path.c_str(), 0755);
  return path;
}

TEST(ParseNvidiaSmiCsvTest, ParsesEveryGpu) {
  auto gpus = ParseNvidiaSmiCsv(
      "0, NVIDIA H100 80GB HBM3, 81559, GPU-aaaa\n1, NVIDIA H100 80GB HBM3, 81559, GPU-bbbb\n\n");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].index(), 1);
  EXPECT_EQ((*gpus)[1].name(), "NVIDIA H100 80GB HBM3");
  EXPECT_EQ((*gpus)[1].memory_bytes(), 81559LL * 1024 * 1024);
  EXPECT_EQ((*gpus)[1].uuid(), "GPU-bbbb");
}

TEST(ParseNvidiaSmiCsvTest, MalformedLineNamesIt) {
  auto gpus = ParseNvidiaSmiCsv("0, A, 100, GPU-a\n1, B, lots, GPU-b\n");
  ASSERT_FALSE(gpus.ok());
  EXPECT_NE(gpus.status().message().find("line 2"), std::string::npos) << gpus.status();
  EXPECT_NE(gpus.status().message().find("memory.total"), std::string::npos);
  EXPECT_FALSE(ParseNvidiaSmiCsv("0, A, 100\n").ok());
}

TEST(NvidiaSmiInventoryTest, RunsTheToolWithTheQuery) {
  // The fake prints a GPU only when asked for exactly the documented query.
  const std::string tool = WriteScript(
      "fake-nvidia-smi",
      "[ \"$1\" = --query-gpu=index,name,memory.total,uuid ] && "
      "[ \"$2\" = --format=csv,noheader,nounits ] || exit 9\n"
      "echo '0, Test GPU, 1024, GPU-x'\n");
  NvidiaSmiInventory inventory(tool);
  auto gpus = inventory.Discover();
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].name(), "Test GPU");
  EXPECT_EQ((*gpus)[0].memory_bytes(), 1024LL << 20);
}

TEST(NvidiaSmiInventoryTest, MissingToolMeansNoGpus) {
  NvidiaSmiInventory inventory("/nonexistent/nvidia-smi");
  auto gpus = inventory.Discover();
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  EXPECT_TRUE(gpus->empty());
}

TEST(NvidiaSmiInventoryTest, FailingToolIsAnError) {
  NvidiaSmiInventory inventory(WriteScript("broken-nvidia-smi", "echo 'driver mismatch'; exit 3\n"));
  auto gpus = inventory.Discover();
  ASSERT_FALSE(gpus.ok());
  EXPECT_NE(gpus.status().message().find("driver mismatch"), std::string::npos);
}

TEST(SelectGpusTest, AppliesTheFlag) {
  std::vector<v1::GpuInfo> found(3);
  for (int i = 0; i < 3; ++i) found[i].set_index(i);
  EXPECT_EQ(SelectGpus(found, "auto")->size(), 3u);
  EXPECT_TRUE(SelectGpus(found, "none")->empty());
  auto some = SelectGpus(found, "2,0");
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 2u);
  EXPECT_EQ((*some)[0].index(), 2);
  EXPECT_EQ(SelectGpus(found, "5").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SelectGpus(found, "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SelectGpus(found, "1,1").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gauntlet::worker
