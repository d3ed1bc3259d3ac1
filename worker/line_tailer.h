#ifndef GAUNTLET_WORKER_LINE_TAILER_H_
#define GAUNTLET_WORKER_LINE_TAILER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gauntlet::worker {

// Follows a file another process appends to and returns whole lines as they complete. A file
// that does not exist yet reads as empty (the trainer creates it after it starts).
class LineTailer {
 public:
  // Reads at most `max_bytes_per_read` per call so one chatty rank cannot stall the agent.
  explicit LineTailer(std::string path, int64_t max_bytes_per_read = 1 << 20);

  // Complete lines appended since the last call, without their '\n'.
  absl::StatusOr<std::vector<std::string>> ReadLines();
  // Like ReadLines, then also returns a trailing line without '\n' (for a writer that exited).
  absl::StatusOr<std::vector<std::string>> Drain();

  const std::string& path() const { return path_; }
  // True when the last read stopped at max_bytes_per_read with more data left.
  bool more() const { return more_; }

 private:
  std::string path_;
  int64_t max_bytes_per_read_;
  int64_t offset_ = 0;
  std::string partial_;
  bool more_ = false;
};

}  // namespace gauntlet::worker

#endif  // GAUNTLET_WORKER_LINE_TAILER_H_
