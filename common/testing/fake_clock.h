#ifndef GAUNTLET_COMMON_TESTING_FAKE_CLOCK_H_
#define GAUNTLET_COMMON_TESTING_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace gauntlet {

// A clock that moves only when told to; SleepFor advances it instead of waiting, so a loop under
// test runs as fast as it can while seeing the time it would have seen. With a `tick`, every
// reading also moves it on by that much (each timed span of a bench then takes exactly `tick`).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000),
                     absl::Duration tick = absl::ZeroDuration())
      : now_(start), tick_(tick) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    now_ += tick_;
    return now_;
  }
  void SleepFor(absl::Duration d) const override {
    if (d > absl::ZeroDuration()) Advance(d);
  }
  // Nothing else runs while the caller waits, so a condition false now stays false: the wait
  // takes its whole timeout, in fake time.
  bool AwaitWithTimeout(absl::Mutex*, const absl::Condition& cond,
                        absl::Duration timeout) const override {
    if (cond.Eval()) return true;
    SleepFor(timeout);
    return cond.Eval();
  }
  void Advance(absl::Duration d) const {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_);
  const absl::Duration tick_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_TESTING_FAKE_CLOCK_H_
