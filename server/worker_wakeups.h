#ifndef GAUNTLET_SERVER_WORKER_WAKEUPS_H_
#define GAUNTLET_SERVER_WORKER_WAKEUPS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace gauntlet {

// The agents' open wake-up streams (WorkerService.WatchActions), by worker id: when the
// controller placed or stopped something on a worker, Wake tells its agent to heartbeat now
// instead of at its next interval. Thread-safe; a waker must not block (it queues a write).
class WorkerWakeups {
 public:
  using Waker = std::function<void()>;

  // Registers the stream of `worker_id`, replacing an older one of the same worker (its agent
  // reconnected); returns the token Remove takes.
  uint64_t Add(const std::string& worker_id, Waker wake);
  // Forgets the stream `token` of `worker_id` (a newer stream of the worker is kept).
  void Remove(const std::string& worker_id, uint64_t token);
  // Calls the waker of each worker that has a stream open; the others heartbeat on their own.
  void Wake(const std::vector<std::string>& worker_ids);
  int size() const;

 private:
  struct Stream {
    uint64_t token;
    Waker wake;
  };
  mutable absl::Mutex mu_;
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, Stream> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gauntlet

#endif  // GAUNTLET_SERVER_WORKER_WAKEUPS_H_
