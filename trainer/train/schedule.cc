#include "trainer/train/schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace gauntlet {

absl::StatusOr<LrSchedule> LrSchedule::FromSpec(const v1::TrainSpec& train) {
  LrSchedule s;
  const v1::ScheduleSpec& spec = train.schedule();
  if (spec.kind().empty() || spec.kind() == "constant") {
    s.kind_ = Kind::kConstant;
  } else if (spec.kind() == "cosine") {
    s.kind_ = Kind::kCosine;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "train.schedule.kind: must be \"constant\" or \"cosine\", got \"", spec.kind(), "\""));
  }
  if (train.optimizer().has_lr()) s.lr_ = train.optimizer().lr();
  if (!(s.lr_ > 0) || !std::isfinite(s.lr_)) {
    return absl::InvalidArgumentError(absl::StrCat("train.optimizer.lr: must be > 0, got ", s.lr_));
  }
  if (spec.has_warmup_steps()) s.warmup_steps_ = spec.warmup_steps();
  if (s.warmup_steps_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.schedule.warmup_steps: must be >= 0, got ", s.warmup_steps_));
  }
  if (spec.has_min_lr_ratio()) s.min_lr_ratio_ = spec.min_lr_ratio();
  if (!(s.min_lr_ratio_ >= 0 && s.min_lr_ratio_ <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "train.schedule.min_lr_ratio: must be in [0, 1], got ", s.min_lr_ratio_));
  }
  return s;
}

double LrSchedule::At(int64_t step, double decay_progress) const {
  // Warm-up reaches lr at the end of step warmup_steps - 1 (the first step is not lr = 0).
  if (step < warmup_steps_) return lr_ * static_cast<double>(step + 1) / warmup_steps_;
  if (kind_ == Kind::kConstant) return lr_;
  const double p = std::clamp(decay_progress, 0.0, 1.0);
  const double min_lr = lr_ * min_lr_ratio_;
  return min_lr + 0.5 * (lr_ - min_lr) * (1.0 + std::cos(M_PI * p));
}

absl::StatusOr<Budget> Budget::FromSpec(const v1::BudgetSpec& spec, int64_t tokens_per_step) {
  if (tokens_per_step < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens per step must be >= 1, got ", tokens_per_step));
  }
  Budget b;
  switch (spec.limit_case()) {
    case v1::BudgetSpec::kSteps:
      if (spec.steps() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("budget.steps: must be >= 1, got ", spec.steps()));
      }
      b.total_steps_ = spec.steps();
      break;
    case v1::BudgetSpec::kTokens:
      if (spec.tokens() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("budget.tokens: must be >= 1, got ", spec.tokens()));
      }
      b.total_steps_ = (spec.tokens() + tokens_per_step - 1) / tokens_per_step;
      break;
    case v1::BudgetSpec::kSeconds:
      if (!(spec.seconds() > 0) || !std::isfinite(spec.seconds())) {
        return absl::InvalidArgumentError(
            absl::StrCat("budget.seconds: must be > 0, got ", spec.seconds()));
      }
      b.seconds_ = spec.seconds();
      break;
    case v1::BudgetSpec::LIMIT_NOT_SET:
      return absl::InvalidArgumentError("budget: set exactly one of steps, tokens or seconds");
  }
  return b;
}

bool Budget::Done(int64_t steps, int64_t tokens, double train_seconds) const {
  if (total_steps_.has_value()) return steps >= *total_steps_;
  return train_seconds >= *seconds_;
}

double Budget::DecayProgress(int64_t step, double train_seconds, int64_t warmup_steps) const {
  if (total_steps_.has_value()) {
    const int64_t span = *total_steps_ - warmup_steps;
    if (span <= 0) return 1.0;
    return std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  }
  return std::clamp(train_seconds / *seconds_, 0.0, 1.0);
}

std::string Budget::Describe() const {
  if (total_steps_.has_value()) return absl::StrCat(*total_steps_);
  return absl::StrCat(*seconds_, "s");
}

}  // namespace gauntlet
