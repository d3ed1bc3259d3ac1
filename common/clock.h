#ifndef GAUNTLET_COMMON_CLOCK_H_
#define GAUNTLET_COMMON_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gauntlet {

// The one time seam of the control plane (coordinator and worker agent): code reads and waits on
// time only through a Clock, so tests drive it. The fake lives in common/testing/fake_clock.h.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  virtual void SleepFor(absl::Duration d) const = 0;
  // Waits, with `mu` held, until `cond` holds or `timeout` passed; returns whether it holds.
  virtual bool AwaitWithTimeout(absl::Mutex* mu, const absl::Condition& cond,
                                absl::Duration timeout) const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void SleepFor(absl::Duration d) const override { absl::SleepFor(d); }
  bool AwaitWithTimeout(absl::Mutex* mu, const absl::Condition& cond,
                        absl::Duration timeout) const override {
    return mu->AwaitWithTimeout(cond, timeout);
  }
};

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_CLOCK_H_
