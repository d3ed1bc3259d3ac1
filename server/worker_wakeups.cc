#include "server/worker_wakeups.h"

#include <utility>

namespace gauntlet {

uint64_t WorkerWakeups::Add(const std::string& worker_id, Waker wake) {
  absl::MutexLock lock(&mu_);
  const uint64_t token = next_token_++;
  streams_[worker_id] = Stream{token, std::move(wake)};
  return token;
}

void WorkerWakeups::Remove(const std::string& worker_id, uint64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(worker_id);
  if (it != streams_.end() && it->second.token == token) streams_.erase(it);
}

void WorkerWakeups::Wake(const std::vector<std::string>& worker_ids) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : worker_ids) {
    auto it = streams_.find(id);
    if (it != streams_.end()) it->second.wake();
  }
}

int WorkerWakeups::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

}  // namespace gauntlet
