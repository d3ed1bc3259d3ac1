#include "trainer/train/schedule.h"

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

v1::TrainSpec Train(const std::string& kind, int64_t warmup, double lr = 1e-3) {
  v1::TrainSpec t;
  t.mutable_schedule()->set_kind(kind);
  t.mutable_schedule()->set_warmup_steps(warmup);
  t.mutable_schedule()->set_min_lr_ratio(0.1);
  t.mutable_optimizer()->set_lr(lr);
  return t;
}

TEST(LrScheduleTest, WarmupThenConstant) {
  LrSchedule s = *LrSchedule::FromSpec(Train("constant", 4));
  EXPECT_DOUBLE_EQ(s.At(0, 0), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.At(3, 0), 1e-3);
  EXPECT_DOUBLE_EQ(s.At(100, 0.9), 1e-3);
}

TEST(LrScheduleTest, CosineFromPeakToFloor) {
  LrSchedule s = *LrSchedule::FromSpec(Train("cosine", 0));
  EXPECT_DOUBLE_EQ(s.At(0, 0.0), 1e-3);
  EXPECT_NEAR(s.At(50, 0.5), 0.55e-3, 1e-12);
  EXPECT_NEAR(s.At(100, 1.0), 1e-4, 1e-12);
}

TEST(LrScheduleTest, ErrorsNameTheField) {
  EXPECT_NE(LrSchedule::FromSpec(Train("linear", 0)).status().message().find("train.schedule.kind"),
            std::string::npos);
  EXPECT_NE(LrSchedule::FromSpec(Train("constant", -1)).status().message().find("warmup_steps"),
            std::string::npos);
  EXPECT_NE(LrSchedule::FromSpec(Train("constant", 0, 0)).status().message().find(
                "train.optimizer.lr"),
            std::string::npos);
}

TEST(BudgetTest, StepsTokensAndSeconds) {
  v1::BudgetSpec steps;
  steps.set_steps(10);
  Budget b = *Budget::FromSpec(steps, 100);
  EXPECT_FALSE(b.Done(9, 900, 1e9));
  EXPECT_TRUE(b.Done(10, 1000, 0));
  EXPECT_EQ(b.Describe(), "10");
  EXPECT_DOUBLE_EQ(b.DecayProgress(6, 0, 2), 0.5);

  v1::BudgetSpec tokens;
  tokens.set_tokens(250);
  b = *Budget::FromSpec(tokens, 100);
  EXPECT_EQ(b.total_steps(), 3);  // rounds up: at least the tokens asked for

  v1::BudgetSpec seconds;
  seconds.set_seconds(60);
  b = *Budget::FromSpec(seconds, 100);
  EXPECT_FALSE(b.Done(1000000, 0, 59.9));
  EXPECT_TRUE(b.Done(1, 0, 60));
  EXPECT_DOUBLE_EQ(b.DecayProgress(0, 30, 0), 0.5);
  EXPECT_EQ(b.Describe(), "60s");

  EXPECT_FALSE(Budget::FromSpec(v1::BudgetSpec(), 100).ok());
  v1::BudgetSpec bad;
  bad.set_steps(0);
  EXPECT_NE(Budget::FromSpec(bad, 1).status().message().find("budget.steps"), std::string::npos);
}

}  // namespace
}  // namespace gauntlet
