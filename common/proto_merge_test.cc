#include "common/proto_merge.h"

#include "gauntlet/v1/spec.pb.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

TEST(ProtoMergeTest, MessagesMergeScalarsReplaceListsReplace) {
  v1::TrialSpec base;
  base.mutable_data()->set_path("base.txt");
  base.mutable_data()->add_include_suffixes(".c");
  base.mutable_data()->add_include_suffixes(".h");
  base.mutable_model()->set_arch("standard");
  base.mutable_model()->set_d_model(128);
  base.mutable_train()->mutable_optimizer()->set_lr(1e-3);
  base.mutable_train()->mutable_optimizer()->set_beta2(0.95);

  v1::TrialSpec overrides;
  overrides.mutable_data()->add_include_suffixes(".txt");
  overrides.mutable_model()->set_arch("worker");
  overrides.mutable_model()->mutable_worker()->set_interval(8);
  overrides.mutable_train()->mutable_optimizer()->set_lr(0);  // explicit zero still overrides

  MergeOverrides(overrides, &base);
  EXPECT_EQ(base.data().path(), "base.txt");
  ASSERT_EQ(base.data().include_suffixes_size(), 1);  // MergeFrom would give .c .h .txt
  EXPECT_EQ(base.data().include_suffixes(0), ".txt");
  EXPECT_EQ(base.model().arch(), "worker");
  EXPECT_EQ(base.model().d_model(), 128);
  EXPECT_EQ(base.model().worker().interval(), 8);
  EXPECT_TRUE(base.train().optimizer().has_lr());
  EXPECT_EQ(base.train().optimizer().lr(), 0);
  EXPECT_DOUBLE_EQ(base.train().optimizer().beta2(), 0.95);
}

TEST(ProtoMergeTest, OneofMemberReplacesTheOther) {
  v1::TrialSpec base;
  base.mutable_budget()->set_steps(100);
  v1::TrialSpec overrides;
  overrides.mutable_budget()->set_seconds(60);
  MergeOverrides(overrides, &base);
  EXPECT_EQ(base.budget().limit_case(), v1::BudgetSpec::kSeconds);
  EXPECT_EQ(base.budget().seconds(), 60);
}

TEST(ProtoMergeTest, EmptyOverridesChangeNothing) {
  v1::TrialSpec base;
  base.mutable_model()->set_arch("standard");
  base.mutable_budget()->set_tokens(5);
  const std::string before = base.SerializeAsString();
  MergeOverrides(v1::TrialSpec(), &base);
  EXPECT_EQ(base.SerializeAsString(), before);
}

}  // namespace
}  // namespace gauntlet
