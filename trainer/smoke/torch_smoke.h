#ifndef GAUNTLET_TRAINER_SMOKE_TORCH_SMOKE_H_
#define GAUNTLET_TRAINER_SMOKE_TORCH_SMOKE_H_

#include <string>

#include <torch/torch.h>

namespace gauntlet {

struct SmokeResult {
  std::string device;
  float first_loss = 0;
  float last_loss = 0;
  int steps = 0;
  double ms_per_step = 0;
};

// Fits a small MLP to a fixed random regression target with AdamW (fused on CUDA, under bf16
// autocast) and reports the loss before and after: proof that forward, backward and the optimizer
// run on `device` through this build's LibTorch.
SmokeResult RunTorchSmoke(const torch::Device& device, int steps);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_SMOKE_TORCH_SMOKE_H_
