#include "trainer/train/peak_flops.h"

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

TEST(PeakFlopsTest, KnownGpus) {
  EXPECT_EQ(PeakBf16FlopsPerSecond("cuda:0 NVIDIA H100 80GB HBM3"), 989e12);
  EXPECT_EQ(PeakBf16FlopsPerSecond("NVIDIA H100 PCIe"), 756e12);
  EXPECT_EQ(PeakBf16FlopsPerSecond("NVIDIA H200"), 989e12);
  EXPECT_EQ(PeakBf16FlopsPerSecond("NVIDIA A100-SXM4-80GB"), 312e12);
  EXPECT_FALSE(PeakBf16FlopsPerSecond("cpu").has_value());
}

TEST(PeakFlopsTest, Mfu) {
  EXPECT_DOUBLE_EQ(Mfu(6e9, 100e3, 1e15, 2), 0.3);
  EXPECT_EQ(Mfu(6e9, 100e3, 0, 1), 0);
}

}  // namespace
}  // namespace gauntlet
