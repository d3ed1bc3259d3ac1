#include "worker/line_tailer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gauntlet::worker {

LineTailer::LineTailer(std::string path, int64_t max_bytes_per_read)
    : path_(std::move(path)), max_bytes_per_read_(max_bytes_per_read) {}

absl::StatusOr<std::vector<std::string>> LineTailer::ReadLines() {
  std::vector<std::string> lines;
  more_ = false;
  const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return lines;
    return absl::UnavailableError(absl::StrCat("open ", path_, ": ", std::strerror(errno)));
  }
  std::string data(static_cast<size_t>(max_bytes_per_read_), '\0');
  int64_t got = 0;
  while (got < max_bytes_per_read_) {
    const ssize_t n = pread(fd, data.data() + got, max_bytes_per_read_ - got, offset_ + got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::UnavailableError(absl::StrCat("read ", path_, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    got += n;
  }
  close(fd);
  more_ = got == max_bytes_per_read_;
  offset_ += got;
  data.resize(static_cast<size_t>(got));
  size_t start = 0;
  for (size_t nl = data.find('\n'); nl != std::string::npos; nl = data.find('\n', start)) {
    partial_.append(data, start, nl - start);
    lines.push_back(std::move(partial_));
    partial_.clear();
    start = nl + 1;
  }
  partial_.append(data, start, std::string::npos);
  return lines;
}

absl::StatusOr<std::vector<std::string>> LineTailer::Drain() {
  std::vector<std::string> lines;
  do {
    absl::StatusOr<std::vector<std::string>> more = ReadLines();
    if (!more.ok()) return more.status();
    for (std::string& l : *more) lines.push_back(std::move(l));
  } while (more_);
  if (!partial_.empty()) {
    lines.push_back(std::move(partial_));
    partial_.clear();
  }
  return lines;
}

}  // namespace gauntlet::worker
