#include "trainer/smoke/torch_smoke.h"

#include <chrono>

#include <ATen/autocast_mode.h>

namespace gauntlet {

SmokeResult RunTorchSmoke(const torch::Device& device, int steps) {
  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(64, 256), torch::nn::GELU(),
                              torch::nn::Linear(256, 8));
  model->to(device);
  torch::optim::AdamWOptions options(1e-2);
  torch::optim::AdamW optimizer(model->parameters(), options);
  auto x = torch::randn({512, 64}, torch::TensorOptions().device(device));
  auto y = torch::randn({512, 8}, torch::TensorOptions().device(device));

  SmokeResult result;
  result.device = device.str();
  result.steps = steps;
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss;
    if (device.is_cuda()) {
      // bf16 autocast, as the trainer uses on GPUs.
      at::autocast::set_autocast_enabled(at::kCUDA, true);
      at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
      loss = torch::mse_loss(model->forward(x).to(torch::kFloat32), y);
      at::autocast::set_autocast_enabled(at::kCUDA, false);
      at::autocast::clear_cache();
    } else {
      loss = torch::mse_loss(model->forward(x), y);
    }
    loss.backward();
    optimizer.step();
    const float value = loss.item<float>();
    if (step == 0) result.first_loss = value;
    result.last_loss = value;
  }
  const auto end = std::chrono::steady_clock::now();
  result.ms_per_step =
      std::chrono::duration<double, std::milli>(end - start).count() / std::max(steps, 1);
  return result;
}

}  // namespace gauntlet
