// The evaluator against the real `worker` architecture from the registry.

#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/data/batch_sampler.h"
#include "trainer/data/test_util.h"
#include "trainer/eval/evaluator.h"
#include "trainer/models/registry.h"

namespace gauntlet {
namespace {

constexpr int64_t kT = 30;  // not a multiple of k: the forced last position matters
constexpr int64_t kInterval = 4;

class WorkerEvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TokenDataset> ds =
        testing::OpenTextDataset(testing::RandomText(4000, 8, "abcdefghijklmnopqrst \n"));
    ASSERT_TRUE(ds.ok()) << ds.status();
    dataset_ = std::make_unique<TokenDataset>(*std::move(ds));
    ModelConfig config;
    config.arch = "worker";
    config.size = "tiny";
    config.vocab_size = dataset_->vocab_size();
    config.d_model = 32;
    config.n_layers = 2;
    config.n_heads = 2;
    config.d_ff = 64;
    config.seq_len = kT;
    config.dropout = 0.1;  // must be inactive during evaluation
    config.worker_interval = kInterval;
    torch::manual_seed(0);
    absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(config);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *model;
  }

  std::unique_ptr<TokenDataset> dataset_;
  std::shared_ptr<LanguageModelImpl> model_;
};

TEST_F(WorkerEvalTest, FairLossTakesEachPositionFromItsWorkerPhase) {
  ASSERT_EQ(model_->NumEvalPhases(), kInterval);
  model_->train();
  EvalOptions options;
  options.batch_size = 4;
  absl::StatusOr<EvalResult> r = Evaluate(*model_, *dataset_, options, torch::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(model_->is_training());

  // Independent recomputation: position t's logits come from the phase p with
  // (t + p) % k == k - 1; the last position from phase 0.
  const int64_t windows = (dataset_->val_size() - 1) / kT;
  torch::NoGradGuard no_grad;
  model_->eval();
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < windows; ++i) starts.push_back(i * kT);
  const Batch batch = *MakeBatch(*dataset_, Split::kVal, starts, kT);
  std::vector<torch::Tensor> nll;
  for (int64_t p = 0; p < kInterval; ++p) {
    const torch::Tensor logp = torch::log_softmax(model_->Forward(batch.inputs, p).logits, -1);
    nll.push_back(-logp.gather(-1, batch.targets.unsqueeze(-1)).squeeze(-1).to(torch::kFloat64));
  }
  double total = 0, native = 0;
  int64_t native_count = 0;
  for (int64_t t = 0; t < kT; ++t) {
    const int64_t phase = t == kT - 1 ? 0 : (kInterval - 1 - t % kInterval);
    total += nll[phase].select(1, t).sum().item<double>();
    if (phase == 0) {
      native += nll[0].select(1, t).sum().item<double>();
      native_count += windows;
    }
  }
  EXPECT_EQ(r->count, windows * kT);
  EXPECT_EQ(r->native_count, native_count);
  EXPECT_NEAR(r->val_loss, total / (windows * kT), 1e-5);
  EXPECT_NEAR(r->val_loss_native, native / native_count, 1e-5);
  // Near ln V for an untrained model, and deterministic (dropout off).
  EXPECT_NEAR(r->val_loss, std::log(static_cast<double>(dataset_->vocab_size())), 1.0);
  model_->train();
  EXPECT_EQ(Evaluate(*model_, *dataset_, options, torch::kCPU)->val_loss, r->val_loss);
}

TEST_F(WorkerEvalTest, SeedProtocolScoresWorkerPositionsOnly) {
  EvalOptions options;
  options.protocol = EvalOptions::Protocol::kSeed;
  options.batch_size = 3;
  options.seed_batches = 2;
  absl::StatusOr<EvalResult> r = Evaluate(*model_, *dataset_, options, torch::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  // T = 30, k = 4: workers 3, 7, ..., 27 and the last, 29: 8 per window.
  EXPECT_EQ(r->tokens_scored, 2 * 3 * 8);
  torch::NoGradGuard no_grad;
  model_->eval();
  double sum = 0;
  for (int64_t j = 0; j < 2; ++j) {
    const Batch batch = *MakeBatch(*dataset_, Split::kVal, {3 * j, 3 * j + 1, 3 * j + 2}, kT);
    sum += MaskedCrossEntropy(model_->Forward(batch.inputs, 0).logits, batch.targets,
                              model_->TrainPositions(kT, 0))
               .item<double>();
  }
  EXPECT_NEAR(r->val_loss, sum / 2, 1e-5);
}

}  // namespace
}  // namespace gauntlet
