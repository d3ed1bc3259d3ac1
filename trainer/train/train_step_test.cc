#include "trainer/train/train_step.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "gauntlet/v1/spec.pb.h"
#include "common/model_config.h"
#include "trainer/models/registry.h"
#include "trainer/train/adamw.h"

namespace gauntlet {
namespace {

// The `tiny` named size, with a 40-token vocabulary.
std::shared_ptr<LanguageModelImpl> Tiny(const std::string& arch) {
  v1::ModelSpec spec;
  spec.set_arch(arch);
  spec.set_size("tiny");
  spec.set_seq_len(24);
  torch::manual_seed(11);
  return *CreateModel(*ResolveModelConfig(spec, 40));
}

// Two TrainSteps with accumulation over 2 micro-batches equal the same steps written out by hand
// (forward, masked cross-entropy, backward, global-norm clip, AdamW), for an arch that trains on
// every position and for one that trains on some (worker).
class TrainStepTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainStepTest, MatchesTheStepWrittenOut) {
  auto model = Tiny(GetParam());
  auto reference = Tiny(GetParam());
  model->train();
  reference->train();
  AdamW optimizer(model->parameters(), AdamWConfig());
  AdamW reference_optimizer(reference->parameters(), AdamWConfig());
  TrainStepOptions options;
  options.accum = 2;
  options.grad_clip = 0.5;
  TrainStep step(model.get(), &optimizer, nullptr, model->parameters(), torch::kCPU, options,
                 nullptr);
  EXPECT_FALSE(step.graphed());

  torch::manual_seed(2);
  for (int s = 0; s < 2; ++s) {
    const torch::Tensor tokens = torch::randint(40, {2, 3, 25}, torch::kInt64);
    const torch::Tensor inputs = tokens.narrow(2, 0, 24).contiguous();
    const torch::Tensor targets = tokens.narrow(2, 1, 24).contiguous();
    ASSERT_TRUE(step.Run(inputs, targets, 1e-2).ok());

    reference_optimizer.ZeroGrad();
    double loss_sum = 0;
    for (int micro = 0; micro < 2; ++micro) {
      const ModelOutput out = reference->Forward(inputs[micro]);
      const torch::Tensor loss =
          MaskedCrossEntropy(out.logits, targets[micro], out.train_positions);
      (loss / 2.0).backward();
      loss_sum += loss.item<double>() / 2.0;
    }
    std::vector<torch::Tensor> grads;
    for (const auto& p : reference->parameters()) grads.push_back(p.grad());
    const double norm =
        torch::linalg_vector_norm(torch::stack(torch::_foreach_norm(grads)), 2).item<double>();
    {
      torch::NoGradGuard no_grad;
      for (auto& g : grads) g.mul_(std::min(1.0, 0.5 / (norm + 1e-6)));
    }
    reference_optimizer.Step(1e-2);

    EXPECT_NEAR(step.lm_loss().item<double>(), loss_sum, 1e-5) << "step " << s;
    EXPECT_NEAR(step.grad_norm().item<double>(), norm, 1e-4) << "step " << s;
    const auto actual = model->parameters();
    const auto expected = reference->parameters();
    for (size_t i = 0; i < actual.size(); ++i) {
      EXPECT_TRUE(torch::allclose(actual[i], expected[i], 1e-5, 1e-6)) << "parameter " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, TrainStepTest, ::testing::Values("standard", "worker"),
                         [](const auto& info) { return info.param; });

TEST(TrainStepShapeTest, RejectsBatchesOfTheWrongShape) {
  auto model = Tiny("standard");
  AdamW optimizer(model->parameters(), AdamWConfig());
  TrainStepOptions options;
  options.accum = 2;
  TrainStep step(model.get(), &optimizer, nullptr, model->parameters(), torch::kCPU, options,
                 nullptr);
  const torch::Tensor one = torch::zeros({1, 2, 24}, torch::kInt64);
  EXPECT_FALSE(step.Run(one, one, 1e-3).ok());
}

}  // namespace
}  // namespace gauntlet
