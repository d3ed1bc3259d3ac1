#include "trainer/train/train_step.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <set>
#include <vector>

#include "gauntlet/v1/spec.pb.h"
#include "common/model_config.h"
#include "trainer/models/registry.h"
#include "trainer/train/adamw.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

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

#if GAUNTLET_CUDA
// A capture that fails after a dropout registered the generator leaves the generator in capture
// mode; the reset must make eager dropout work again and keep its seed and offset. Skips without a
// GPU.
TEST(TrainStepCudaTest, EagerDropoutWorksAfterAFailedCapture) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  const torch::Device gpu(torch::kCUDA, 0);
  const torch::Tensor x = torch::ones({4096}, torch::TensorOptions().device(gpu));
  torch::dropout(x, 0.5, true);  // the generator's state exists before the capture
  at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(0);
  const uint64_t seed = gen.current_seed();
  const uint64_t offset = gen.get<at::CUDAGeneratorImpl>()->philox_offset_per_thread();
  {
    c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool(false, 0));
    at::cuda::CUDAGraph graph;
    graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    torch::dropout(x, 0.5, true);
    // Synchronising is illegal inside a capture: it invalidates it, as any failure would.
    EXPECT_ANY_THROW(c10::cuda::getCurrentCUDAStream().synchronize());
    EXPECT_ANY_THROW(graph.capture_end());
    (void)cudaGetLastError();
  }
  ResetCudaGeneratorAfterFailedCapture(0);
  EXPECT_EQ(gen.current_seed(), seed);
  EXPECT_EQ(gen.get<at::CUDAGeneratorImpl>()->philox_offset_per_thread(), offset);
  torch::Tensor y;
  ASSERT_NO_THROW(y = torch::dropout(x, 0.5, true));
  const double kept = (y > 0).sum().item<double>() / x.numel();
  EXPECT_GT(kept, 0.4);
  EXPECT_LT(kept, 0.6);
}
#endif

#if GAUNTLET_CUDA
// MatFormer's sampled mode inside a captured step: the granularity is drawn on the device, so
// every replay trains a freshly drawn width (the number of leading FFN hidden units whose fc1 rows
// got a gradient), not the width drawn at capture. Skips without a GPU.
TEST(TrainStepCudaTest, SampledMatFormerDrawsAWidthAtEveryReplay) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  const torch::Device gpu(torch::kCUDA, 0);
  v1::ModelSpec spec;
  spec.set_arch("matformer");
  spec.set_size("tiny");
  spec.set_seq_len(24);
  spec.mutable_matformer()->set_train_mode("sample");
  for (const double f : {0.25, 0.5, 1.0}) spec.mutable_matformer()->add_granularities(f);
  const ModelConfig config = *ResolveModelConfig(spec, 40);
  torch::manual_seed(11);
  auto model = *CreateModel(config);
  model->to(gpu);
  model->train();
  AdamW optimizer(model->parameters(), AdamWConfig());
  c10::cuda::CUDAStreamGuard side(c10::cuda::getStreamFromPool(false, 0));
  TrainStepOptions options;
  TrainStep step(model.get(), &optimizer, nullptr, model->parameters(), gpu, options, nullptr);
  const torch::Tensor fc1 = model->named_parameters()["blocks.0.ffn.fc1.weight"];
  std::set<int64_t> eager_widths, replay_widths;
  for (int s = 0; s < 40; ++s) {
    const torch::Tensor tokens = torch::randint(40, {1, 4, 25}, torch::kInt64);
    ASSERT_TRUE(step.Run(tokens.narrow(2, 0, 24).contiguous(),
                         tokens.narrow(2, 1, 24).contiguous(), 1e-3)
                    .ok());
    const int64_t width = (fc1.grad().abs().sum(1) > 0).sum().item<int64_t>();
    (step.graphed() ? replay_widths : eager_widths).insert(width);
    EXPECT_TRUE(std::isfinite(step.loss().item<double>()));
  }
  ASSERT_TRUE(step.graphed()) << step.description();
  const std::vector<int64_t> widths = MatFormerWidths(config);
  EXPECT_EQ(replay_widths, std::set<int64_t>(widths.begin(), widths.end()));
  for (const int64_t w : eager_widths) EXPECT_TRUE(replay_widths.count(w) == 1) << w;
}
#endif

}  // namespace
}  // namespace gauntlet
