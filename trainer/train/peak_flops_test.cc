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

TEST(PeakFlopsTest, MemoryBandwidth) {
  EXPECT_EQ(PeakMemoryBandwidthBytesPerSecond("cuda:0 NVIDIA H200"), 4.8e12);
  EXPECT_EQ(PeakMemoryBandwidthBytesPerSecond("NVIDIA H100 80GB HBM3"), 3.35e12);
  EXPECT_EQ(PeakMemoryBandwidthBytesPerSecond("NVIDIA H100 PCIe"), 2.0e12);
  EXPECT_FALSE(PeakMemoryBandwidthBytesPerSecond("cpu").has_value());
}

TEST(PeakFlopsTest, Mfu) {
  EXPECT_DOUBLE_EQ(Mfu(6e9, 100e3, 1e15, 2), 0.3);
  EXPECT_EQ(Mfu(6e9, 100e3, 0, 1), 0);
}

}  // namespace
}  // namespace gauntlet
