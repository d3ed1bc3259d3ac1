#ifndef GAUNTLET_TRAINER_TRAIN_ADAMW_H_
#define GAUNTLET_TRAINER_TRAIN_ADAMW_H_

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  // InvalidArgument naming train.optimizer.* for out-of-range values or an unknown name.
  static absl::StatusOr<AdamWConfig> FromSpec(const v1::OptimizerSpec& spec);
};

// AdamW through ATen's fused multi-tensor kernel (at::_fused_adamw_) on CPU and CUDA alike: one
// kernel launch per step on GPUs, and the CPU kernel was checked to match torch.optim.AdamW.
// torch::optim::AdamW has no fused option in C++; owning the state here also makes it plain
// tensors for the checkpoint. The learning rate is passed per step (the schedule owns it).
class AdamW {
 public:
  AdamW(std::vector<torch::Tensor> params, AdamWConfig config);

  // One update of every parameter that has a gradient.
  void Step(double lr);
  // The same with the learning rate read from a 0-dim float32 tensor on the parameters' device,
  // so a captured CUDA graph can replay the update with a new rate written into `lr`. A defined
  // `grad_scale` (0-dim float32, same device) divides every gradient inside the same kernel: a
  // global-norm clip without a pass of its own over the gradients.
  void Step(const torch::Tensor& lr, const torch::Tensor& grad_scale = torch::Tensor());
  // Allocates the moments now (they are otherwise created by the first Step): a graph capture
  // must find them already there.
  void EnsureState();
  // Drops gradients (set to undefined): the next backward writes instead of accumulating.
  void ZeroGrad();

  // Moments and step counts, keyed "<param index>/exp_avg" etc.; empty before the first Step.
  std::map<std::string, torch::Tensor> StateDict() const;
  // InvalidArgument when shapes or parameter count do not match this model.
  absl::Status LoadStateDict(const std::map<std::string, torch::Tensor>& state);

 private:
  void InitState();
  // `lr_tensor` when defined, else `lr`.
  void Update(double lr, const torch::Tensor& lr_tensor, const torch::Tensor& grad_scale);

  std::vector<torch::Tensor> params_;
  AdamWConfig config_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_, steps_;  // empty until first Step
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_ADAMW_H_
