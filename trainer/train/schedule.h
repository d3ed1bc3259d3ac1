#ifndef GAUNTLET_TRAINER_TRAIN_SCHEDULE_H_
#define GAUNTLET_TRAINER_TRAIN_SCHEDULE_H_

// Torch-free: the learning-rate schedule and the training budget.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

// constant or cosine, with linear warm-up from 0.
class LrSchedule {
 public:
  enum class Kind { kConstant, kCosine };
  // InvalidArgument naming train.schedule.* / train.optimizer.lr.
  static absl::StatusOr<LrSchedule> FromSpec(const v1::TrainSpec& train);

  // lr for optimizer step `step` (0-based). `decay_progress` in [0, 1] is how far through the
  // post-warm-up part of the budget training is (Budget::DecayProgress); constant ignores it.
  double At(int64_t step, double decay_progress) const;

  int64_t warmup_steps() const { return warmup_steps_; }

 private:
  Kind kind_ = Kind::kConstant;
  double lr_ = 3e-4;
  int64_t warmup_steps_ = 0;
  double min_lr_ratio_ = 0.1;
};

// Exactly one of steps, tokens or training seconds (evaluation and checkpoints excluded).
class Budget {
 public:
  // tokens_per_step: global tokens per optimizer step (batch x seq x accum x world size).
  static absl::StatusOr<Budget> FromSpec(const v1::BudgetSpec& spec, int64_t tokens_per_step);

  bool Done(int64_t steps, int64_t tokens, double train_seconds) const;
  // Fraction of the budget after warm-up already used, clamped to [0, 1].
  double DecayProgress(int64_t step, double train_seconds, int64_t warmup_steps) const;
  // Known up front for step and token budgets.
  std::optional<int64_t> total_steps() const { return total_steps_; }
  bool is_seconds() const { return seconds_.has_value(); }
  // "5000" or "300s", for the log line.
  std::string Describe() const;

 private:
  std::optional<int64_t> total_steps_;
  std::optional<double> seconds_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_SCHEDULE_H_
