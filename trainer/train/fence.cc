#include "trainer/train/fence.h"

#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "trainer/train/exit_code.h"

namespace gauntlet {

Fence::Fence(std::string path, int attempt, std::chrono::milliseconds check_every)
    : path_(std::move(path)), attempt_(attempt), check_every_(check_every) {}

absl::Status Fence::Check(bool force) {
  if (attempt_ <= 0 || path_.empty()) return absl::OkStatus();
  const auto now = std::chrono::steady_clock::now();
  if (!force && now < next_check_) return absl::OkStatus();
  next_check_ = now + check_every_;
  std::ifstream in(path_);
  std::string text;
  int owner = 0;
  // A missing or unreadable file claims nothing: only a newer attempt's claim fences.
  if (!in || !std::getline(in, text) || !absl::SimpleAtoi(text, &owner) || owner <= attempt_) {
    return absl::OkStatus();
  }
  return WithExitCode(
      absl::AbortedError(absl::StrCat("fenced: attempt ", owner, " now owns ", path_,
                                      "; attempt ", attempt_, " stops without writing")),
      ExitCode::kFenced);
}

}  // namespace gauntlet
