#include "trainer/train/adamw.h"

#include <gtest/gtest.h>

namespace gauntlet {
namespace {

torch::nn::Linear MakeLayer() {
  torch::manual_seed(3);
  return torch::nn::Linear(6, 5);
}

void Backward(torch::nn::Linear& layer, int step) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + step);
  torch::Tensor x = torch::randn({8, 6}, gen);
  layer->forward(x).pow(2).mean().backward();
}

// The fused kernel must do what torch::optim::AdamW (the reference implementation) does.
TEST(AdamWTest, MatchesTorchOptimAdamW) {
  torch::nn::Linear ours = MakeLayer();
  torch::nn::Linear reference = MakeLayer();
  AdamWConfig config;
  config.weight_decay = 0.1;
  AdamW optimizer(ours->parameters(), config);
  torch::optim::AdamW torch_optimizer(
      reference->parameters(),
      torch::optim::AdamWOptions(1e-2).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.1));
  for (int step = 0; step < 6; ++step) {
    optimizer.ZeroGrad();
    torch_optimizer.zero_grad();
    Backward(ours, step);
    Backward(reference, step);
    optimizer.Step(1e-2);
    torch_optimizer.step();
  }
  EXPECT_TRUE(torch::allclose(ours->weight, reference->weight, 1e-5, 1e-7));
  EXPECT_TRUE(torch::allclose(ours->bias, reference->bias, 1e-5, 1e-7));
}

TEST(AdamWTest, StateDictRoundTripContinuesIdentically) {
  torch::nn::Linear a = MakeLayer();
  AdamW opt_a(a->parameters(), AdamWConfig());
  for (int step = 0; step < 3; ++step) {
    opt_a.ZeroGrad();
    Backward(a, step);
    opt_a.Step(1e-2);
  }
  torch::nn::Linear b = MakeLayer();
  {
    torch::NoGradGuard no_grad;
    b->weight.copy_(a->weight);
    b->bias.copy_(a->bias);
  }
  AdamW opt_b(b->parameters(), AdamWConfig());
  std::map<std::string, torch::Tensor> state;
  for (const auto& [k, v] : opt_a.StateDict()) state[k] = v.clone();
  ASSERT_TRUE(opt_b.LoadStateDict(state).ok());
  for (auto [layer, opt] : {std::pair{&a, &opt_a}, std::pair{&b, &opt_b}}) {
    opt->ZeroGrad();
    Backward(*layer, 3);
    opt->Step(1e-2);
  }
  EXPECT_TRUE(torch::equal(a->weight, b->weight));
  state.erase(state.begin());
  EXPECT_FALSE(opt_b.LoadStateDict(state).ok());
}

TEST(AdamWTest, ConfigErrorsNameTheField) {
  v1::OptimizerSpec spec;
  spec.set_beta2(1.0);
  EXPECT_NE(AdamWConfig::FromSpec(spec).status().message().find("train.optimizer.beta2"),
            std::string::npos);
  spec = v1::OptimizerSpec();
  spec.set_name("sgd");
  EXPECT_NE(AdamWConfig::FromSpec(spec).status().message().find("train.optimizer.name"),
            std::string::npos);
}

}  // namespace
}  // namespace gauntlet
