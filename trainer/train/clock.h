#ifndef GAUNTLET_TRAINER_TRAIN_CLOCK_H_
#define GAUNTLET_TRAINER_TRAIN_CLOCK_H_

#include <chrono>

namespace gauntlet {

// Seconds from an arbitrary origin. Injected into the training loop so tests can drive
// wall-clock budgets without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double Seconds() = 0;
};

class SteadyClock : public Clock {
 public:
  double Seconds() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_CLOCK_H_
