#ifndef GAUNTLET_WORKER_CLOCK_H_
#define GAUNTLET_WORKER_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gauntlet::worker {

// Time source for the agent's run loop. The agent's logic itself takes `now` as an argument
// (Tick(now)), so only the loop that drives it needs a clock; tests drive Tick directly.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() = 0;
  virtual void SleepFor(absl::Duration d) = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }
};

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_CLOCK_H_
