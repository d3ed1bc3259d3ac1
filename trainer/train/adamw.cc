#include "trainer/train/adamw.h"

#include <optional>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace gauntlet {

absl::StatusOr<AdamWConfig> AdamWConfig::FromSpec(const v1::OptimizerSpec& spec) {
  if (!spec.name().empty() && spec.name() != "adamw") {
    return absl::InvalidArgumentError(
        absl::StrCat("train.optimizer.name: only \"adamw\" is supported, got \"", spec.name(),
                     "\""));
  }
  AdamWConfig c;
  if (spec.has_beta1()) c.beta1 = spec.beta1();
  if (spec.has_beta2()) c.beta2 = spec.beta2();
  if (spec.has_eps()) c.eps = spec.eps();
  if (spec.has_weight_decay()) c.weight_decay = spec.weight_decay();
  if (!(c.beta1 >= 0 && c.beta1 < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.optimizer.beta1: must be in [0, 1), got ", c.beta1));
  }
  if (!(c.beta2 >= 0 && c.beta2 < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.optimizer.beta2: must be in [0, 1), got ", c.beta2));
  }
  if (!(c.eps > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.optimizer.eps: must be > 0, got ", c.eps));
  }
  if (!(c.weight_decay >= 0) || !std::isfinite(c.weight_decay)) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.optimizer.weight_decay: must be >= 0, got ", c.weight_decay));
  }
  return c;
}

AdamW::AdamW(std::vector<torch::Tensor> params, AdamWConfig config)
    : params_(std::move(params)), config_(config) {}

void AdamW::InitState() {
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& p : params_) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    // The fused kernel reads the step count from a float tensor on the parameter's device.
    steps_.push_back(torch::zeros({}, p.options().dtype(torch::kFloat32)));
  }
}

void AdamW::EnsureState() {
  if (exp_avg_.empty()) InitState();
}

void AdamW::Step(double lr) { Update(lr, torch::Tensor(), torch::Tensor()); }

void AdamW::Step(const torch::Tensor& lr, const torch::Tensor& grad_scale) {
  Update(0.0, lr, grad_scale);
}

void AdamW::Update(double lr, const torch::Tensor& lr_tensor, const torch::Tensor& grad_scale) {
  EnsureState();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params, grads, m, v, steps;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    params.push_back(params_[i]);
    grads.push_back(params_[i].grad());
    m.push_back(exp_avg_[i]);
    v.push_back(exp_avg_sq_[i]);
    steps.push_back(steps_[i]);
  }
  if (params.empty()) return;
  // Like torch.optim's fused path: the count is incremented before the kernel, which uses it
  // for bias correction.
  torch::_foreach_add_(steps, 1);
  const std::optional<torch::Tensor> scale =
      grad_scale.defined() ? std::optional<torch::Tensor>(grad_scale) : std::nullopt;
  if (lr_tensor.defined()) {
    at::_fused_adamw_(params, grads, m, v, /*max_exp_avg_sqs=*/{}, steps, lr_tensor,
                      config_.beta1, config_.beta2, config_.weight_decay, config_.eps,
                      /*amsgrad=*/false, /*maximize=*/false, scale);
  } else {
    at::_fused_adamw_(params, grads, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, config_.beta1,
                      config_.beta2, config_.weight_decay, config_.eps, /*amsgrad=*/false,
                      /*maximize=*/false, scale);
  }
}

void AdamW::ZeroGrad() {
  for (torch::Tensor& p : params_) p.mutable_grad() = torch::Tensor();
}

std::map<std::string, torch::Tensor> AdamW::StateDict() const {
  std::map<std::string, torch::Tensor> state;
  for (size_t i = 0; i < exp_avg_.size(); ++i) {
    state[absl::StrCat(i, "/exp_avg")] = exp_avg_[i];
    state[absl::StrCat(i, "/exp_avg_sq")] = exp_avg_sq_[i];
    state[absl::StrCat(i, "/step")] = steps_[i];
  }
  return state;
}

absl::Status AdamW::LoadStateDict(const std::map<std::string, torch::Tensor>& state) {
  if (state.empty()) return absl::OkStatus();
  if (state.size() != 3 * params_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer state has ", state.size() / 3,
                                                   " parameters, the model ", params_.size()));
  }
  if (exp_avg_.empty()) InitState();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto [name, dst] : {std::pair<const char*, torch::Tensor*>{"exp_avg", &exp_avg_[i]},
                             {"exp_avg_sq", &exp_avg_sq_[i]},
                             {"step", &steps_[i]}}) {
      auto it = state.find(absl::StrCat(i, "/", name));
      if (it == state.end() || it->second.sizes() != dst->sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimizer state ", i, "/", name, " is missing or has the wrong shape"));
      }
      dst->copy_(it->second);
    }
  }
  return absl::OkStatus();
}

}  // namespace gauntlet
