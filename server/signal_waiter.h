#ifndef GAUNTLET_SERVER_SIGNAL_WAITER_H_
#define GAUNTLET_SERVER_SIGNAL_WAITER_H_

namespace gauntlet {

// Blocks SIGTERM and SIGINT in the calling thread (call it first in main, before any thread
// starts, so every thread inherits the mask) and lets one thread wait for them synchronously.
class SignalWaiter {
 public:
  SignalWaiter();
  // Returns the signal number that arrived.
  int Wait();
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_SIGNAL_WAITER_H_
