#include "trainer/data/batch_sampler.h"

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/data/test_util.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;

TokenDataset OpenDataset(const std::string& text) {
  absl::StatusOr<TokenDataset> ds = testing::OpenTextDataset(text);
  if (!ds.ok()) throw std::runtime_error(ds.status().ToString());
  return *ds;
}

const TokenDataset& Shared() {
  static const TokenDataset* ds =
      new TokenDataset(OpenDataset(testing::RandomText(20000, 11, "abcdefghijklmnop \n")));
  return *ds;
}

TEST(BatchSamplerTest, BatchesAreTrainWindowsWithShiftedTargets) {
  const TokenDataset& ds = Shared();
  absl::StatusOr<BatchSampler> sampler = BatchSampler::Create(ds, Split::kTrain, 32, 4, 0, 0);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  EXPECT_EQ(sampler->num_windows(), ds.train_size() - 32);
  BatchSampler copy = *sampler;
  const std::vector<int64_t> starts = copy.NextStarts();
  const Batch batch = sampler->Next();
  ASSERT_EQ(batch.inputs.sizes(), torch::IntArrayRef({4, 32}));
  ASSERT_EQ(batch.targets.sizes(), torch::IntArrayRef({4, 32}));
  EXPECT_EQ(batch.inputs.dtype(), torch::kInt64);
  for (int b = 0; b < 4; ++b) {
    torch::Tensor expected = *WindowTensor(ds, Split::kTrain, starts[b], 33);
    EXPECT_TRUE(torch::equal(batch.inputs[b], expected.narrow(0, 0, 32)));
    EXPECT_TRUE(torch::equal(batch.targets[b], expected.narrow(0, 1, 32)));
  }
}

TEST(BatchSamplerTest, DeterministicPerSeedAndRankAndDifferentAcrossThem) {
  const TokenDataset& ds = Shared();
  auto draw = [&](int64_t seed, int64_t rank) {
    BatchSampler s = *BatchSampler::Create(ds, Split::kTrain, 16, 8, seed, rank);
    std::vector<int64_t> all;
    for (int i = 0; i < 5; ++i) {
      for (int64_t x : s.NextStarts()) all.push_back(x);
    }
    return all;
  };
  EXPECT_EQ(draw(3, 0), draw(3, 0));
  EXPECT_NE(draw(3, 0), draw(3, 1));
  EXPECT_NE(draw(3, 0), draw(4, 0));
}

TEST(BatchSamplerTest, OffsetsCoverTheWholeRangeUniformly) {
  // 8 windows; 8000 draws: every window appears, each about 1000 times.
  const TokenDataset ds = OpenDataset(std::string(90, 'a') + std::string(10, 'b'));
  BatchSampler s = *BatchSampler::Create(ds, Split::kTrain, 82, 100, 1, 0);
  ASSERT_EQ(s.num_windows(), 8);
  std::vector<int> counts(8, 0);
  for (int i = 0; i < 80; ++i) {
    for (int64_t x : s.NextStarts()) {
      ASSERT_GE(x, 0);
      ASSERT_LT(x, 8);
      ++counts[x];
    }
  }
  for (int c : counts) {
    EXPECT_GT(c, 850);  // 5 sigma below the mean of 1000
    EXPECT_LT(c, 1150);
  }
}

TEST(BatchSamplerTest, RestoredStateReproducesTheSameBatches) {
  const TokenDataset& ds = Shared();
  BatchSampler a = *BatchSampler::Create(ds, Split::kTrain, 16, 4, 42, 1);
  for (int i = 0; i < 7; ++i) a.Next();
  const BatchSampler::State saved = a.state();
  EXPECT_EQ(saved.batches, 7);
  std::vector<Batch> expected;
  for (int i = 0; i < 3; ++i) expected.push_back(a.Next());

  BatchSampler b = *BatchSampler::Create(ds, Split::kTrain, 16, 4, 42, 1);
  ASSERT_TRUE(b.Restore(saved).ok());
  for (int i = 0; i < 3; ++i) {
    const Batch got = b.Next();
    EXPECT_TRUE(torch::equal(got.inputs, expected[i].inputs)) << "batch " << i;
    EXPECT_TRUE(torch::equal(got.targets, expected[i].targets)) << "batch " << i;
  }
  EXPECT_EQ(b.state(), a.state());

  BatchSampler other_rank = *BatchSampler::Create(ds, Split::kTrain, 16, 4, 42, 0);
  EXPECT_EQ(other_rank.Restore(saved).code(), absl::StatusCode::kFailedPrecondition);

  // Every rank consumes the same number of words per batch, so one rank's counters (with the
  // rank field replaced) restore any other rank's stream.
  for (int i = 0; i < 7; ++i) other_rank.Next();
  BatchSampler::State for_rank0 = saved;
  for_rank0.rank = 0;
  EXPECT_EQ(other_rank.state(), for_rank0);
}

TEST(BatchSamplerTest, RejectsBadArgumentsNamingTheField) {
  const TokenDataset& ds = Shared();
  EXPECT_THAT(BatchSampler::Create(ds, Split::kTrain, 16, 0, 0, 0).status().message(),
              HasSubstr("train.batch_size"));
  EXPECT_THAT(BatchSampler::Create(ds, Split::kTrain, 0, 4, 0, 0).status().message(),
              HasSubstr("model.seq_len"));
  EXPECT_THAT(BatchSampler::Create(ds, Split::kVal, 5000, 4, 0, 0).status().message(),
              HasSubstr("fewer than one window"));
  EXPECT_EQ(WindowTensor(ds, Split::kVal, ds.val_size() - 2, 3).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST(BatchSamplerTest, MixtureDrawsSourcesByWeightAndNeverSpansThem) {
  absl::StatusOr<TokenDataset> ds = testing::OpenMixtureDataset(
      {{std::string(20000, 'a'), 1.0}, {std::string(5000, 'b'), 3.0}}, 20, 0.2);
  ASSERT_TRUE(ds.ok()) << ds.status();
  const TokenDataset::Source& b = ds->sources()[1];
  const int64_t seq_len = 16;
  absl::StatusOr<BatchSampler> sampler = BatchSampler::Create(*ds, Split::kTrain, seq_len, 64, 5, 0);
  ASSERT_TRUE(sampler.ok()) << sampler.status();
  int from_b = 0, total = 0;
  for (int i = 0; i < 200; ++i) {
    for (int64_t start : sampler->NextStarts()) {
      const bool in_b = start >= b.train_begin;
      from_b += in_b;
      ++total;
      // The whole window (seq_len + 1 tokens) stays inside its source.
      if (in_b) {
        EXPECT_LE(start + seq_len + 1, b.train_begin + b.train_size);
      } else {
        EXPECT_LE(start + seq_len + 1, b.train_begin);
      }
    }
  }
  // Weight 3 of 4 although source b holds a fifth of the tokens: 9600 of 12800 expected, and a
  // binomial's standard deviation here is 49.
  EXPECT_NEAR(from_b, 0.75 * total, 250);
  EXPECT_EQ(sampler->state().draws, static_cast<uint64_t>(2 * total));

  // A source too short for one window is named.
  EXPECT_THAT(BatchSampler::Create(*ds, Split::kVal, 2000, 1, 0, 0).status().message(),
              HasSubstr("data.sources[1]"));
}

}  // namespace
}  // namespace gauntlet
