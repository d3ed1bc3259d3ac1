#include "trainer/eval/eval_options.h"

#include "gauntlet/v1/spec.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;

TEST(EvalOptionsTest, DefaultsFollowTheSpecComments) {
  absl::StatusOr<EvalOptions> periodic = EvalOptions::FromSpec(v1::EvalSpec(), 16, false);
  ASSERT_TRUE(periodic.ok()) << periodic.status();
  EXPECT_EQ(periodic->protocol, EvalOptions::Protocol::kFair);
  EXPECT_EQ(periodic->max_tokens, 0);
  EXPECT_EQ(periodic->batch_size, 16);
  EXPECT_EQ(periodic->seed_batches, 20);
  EXPECT_EQ(EvalOptions::FromSpec(v1::EvalSpec(), 16, true)->seed_batches, 50);
}

TEST(EvalOptionsTest, ExplicitValuesWin) {
  v1::EvalSpec spec;
  spec.set_protocol("seed");
  spec.set_batch_size(4);
  spec.set_seed_batches(3);
  spec.set_seed_final_batches(7);
  spec.set_max_tokens(1000);
  absl::StatusOr<EvalOptions> options = EvalOptions::FromSpec(spec, 16, false);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->protocol, EvalOptions::Protocol::kSeed);
  EXPECT_STREQ(ProtocolName(options->protocol), "seed");
  EXPECT_EQ(options->batch_size, 4);
  EXPECT_EQ(options->seed_batches, 3);
  EXPECT_EQ(options->max_tokens, 1000);
  EXPECT_EQ(EvalOptions::FromSpec(spec, 16, true)->seed_batches, 7);
}

TEST(EvalOptionsTest, BadValuesNameTheField) {
  v1::EvalSpec spec;
  spec.set_protocol("nanogpt");
  EXPECT_THAT(EvalOptions::FromSpec(spec, 16, false).status().message(),
              HasSubstr("eval.protocol"));
  spec.Clear();
  spec.set_max_tokens(-5);
  EXPECT_THAT(EvalOptions::FromSpec(spec, 16, false).status().message(),
              HasSubstr("eval.max_tokens"));
  spec.Clear();
  spec.set_batch_size(0);
  EXPECT_THAT(EvalOptions::FromSpec(spec, 16, false).status().message(),
              HasSubstr("eval.batch_size"));
  EXPECT_THAT(EvalOptions::FromSpec(v1::EvalSpec(), 0, false).status().message(),
              HasSubstr("train.batch_size"));
  spec.Clear();
  spec.set_seed_final_batches(0);
  EXPECT_THAT(EvalOptions::FromSpec(spec, 16, true).status().message(),
              HasSubstr("eval.seed_final_batches"));
}

}  // namespace
}  // namespace gauntlet
