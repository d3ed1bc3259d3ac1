#include "trainer/train/batch_prefetcher.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "trainer/data/batch_sampler.h"
#include "trainer/data/test_util.h"

namespace gauntlet {
namespace {

TokenDataset Dataset() {
  absl::StatusOr<TokenDataset> ds =
      testing::OpenTextDataset(testing::RandomText(20000, 7, "abcdefghij \n"));
  EXPECT_TRUE(ds.ok()) << ds.status();
  return *std::move(ds);
}

// The prefetched stream is exactly the sampler's stream, grouped `accum` batches per step, and
// each step carries the sampler state after its own batches, however far the thread read ahead.
TEST(BatchPrefetcherTest, YieldsTheSamplersBatchesInOrderWithTheirStates) {
  const TokenDataset ds = Dataset();
  constexpr int64_t kAccum = 3;
  BatchSampler reference = *BatchSampler::Create(ds, Split::kTrain, 16, 4, /*seed=*/5, 0);
  BatchPrefetcher prefetcher(*BatchSampler::Create(ds, Split::kTrain, 16, 4, 5, 0), kAccum,
                             /*pinned=*/false, /*depth=*/2);
  for (int step = 0; step < 10; ++step) {
    const StepBatch batch = prefetcher.Next();
    ASSERT_EQ(batch.inputs.sizes(), torch::IntArrayRef({kAccum, 4, 16}));
    for (int64_t micro = 0; micro < kAccum; ++micro) {
      const Batch expected = reference.Next();
      EXPECT_TRUE(torch::equal(batch.inputs.select(0, micro), expected.inputs)) << step;
      EXPECT_TRUE(torch::equal(batch.targets.select(0, micro), expected.targets)) << step;
    }
    EXPECT_TRUE(batch.sampler_state == reference.state()) << "step " << step;
    prefetcher.Release(batch);
  }
}

// Restoring a sampler to a step's state and prefetching again continues the same stream: what a
// checkpoint taken after that step must give on resume.
TEST(BatchPrefetcherTest, ResumingFromAStepStateContinuesTheStream) {
  const TokenDataset ds = Dataset();
  BatchSampler::State after_four;
  std::vector<torch::Tensor> expected;
  {
    BatchPrefetcher prefetcher(*BatchSampler::Create(ds, Split::kTrain, 8, 2, 9, 1), 1, false);
    for (int step = 0; step < 7; ++step) {
      const StepBatch batch = prefetcher.Next();
      if (step == 3) after_four = batch.sampler_state;
      if (step >= 4) expected.push_back(batch.inputs.clone());
      prefetcher.Release(batch);
    }
  }
  BatchSampler resumed = *BatchSampler::Create(ds, Split::kTrain, 8, 2, 9, 1);
  ASSERT_TRUE(resumed.Restore(after_four).ok());
  BatchPrefetcher prefetcher(std::move(resumed), 1, false);
  for (const torch::Tensor& want : expected) {
    const StepBatch batch = prefetcher.Next();
    EXPECT_TRUE(torch::equal(batch.inputs, want));
    prefetcher.Release(batch);
  }
}

}  // namespace
}  // namespace gauntlet
