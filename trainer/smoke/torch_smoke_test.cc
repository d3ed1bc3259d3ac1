#include "trainer/smoke/torch_smoke.h"

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

TEST(TorchSmokeTest, AdamWReducesLossOnCpu) {
  const SmokeResult r = RunTorchSmoke(torch::Device(torch::kCPU), 100);
  EXPECT_EQ(r.device, "cpu");
  EXPECT_GT(r.first_loss, 0.5f);
  EXPECT_LT(r.last_loss, r.first_loss * 0.5f);
}

}  // namespace
}  // namespace gauntlet
