#ifndef GAUNTLET_COMMON_CLOCK_H_
#define GAUNTLET_COMMON_CLOCK_H_

#include <chrono>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gauntlet {

// The one time seam of every component (coordinator, worker agent, trainer, benches): code reads
// and waits on time only through a Clock, so tests drive it. The fake lives in
// common/testing/fake_clock.h.
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

// Wall time at construction plus the steady clock's time since: never jumps (NTP steps do not
// stretch or shrink a training budget or a timing), still reads as a date.
class MonotonicClock final : public Clock {
 public:
  MonotonicClock() : wall_origin_(absl::Now()), steady_origin_(std::chrono::steady_clock::now()) {}
  absl::Time Now() const override {
    return wall_origin_ + absl::FromChrono(std::chrono::steady_clock::now() - steady_origin_);
  }
  void SleepFor(absl::Duration d) const override { absl::SleepFor(d); }
  bool AwaitWithTimeout(absl::Mutex* mu, const absl::Condition& cond,
                        absl::Duration timeout) const override {
    return mu->AwaitWithTimeout(cond, timeout);
  }

 private:
  const absl::Time wall_origin_;
  const std::chrono::steady_clock::time_point steady_origin_;
};

// Seconds since the Unix epoch on `clock`, for code that keeps time as doubles (differences of
// two readings are exact to well under a microsecond).
inline double ClockSeconds(const Clock& clock) {
  return absl::ToDoubleSeconds(clock.Now() - absl::UnixEpoch());
}

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_CLOCK_H_
