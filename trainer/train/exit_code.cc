#include "trainer/train/exit_code.h"

#include <c10/util/Exception.h>

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

constexpr char kPayloadUrl[] = "gauntlet.dev/trainer-exit-code";

}  // namespace

absl::Status WithExitCode(absl::Status status, ExitCode code) {
  if (status.ok()) return status;
  status.SetPayload(kPayloadUrl, absl::Cord(std::to_string(static_cast<int>(code))));
  return status;
}

ExitCode ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return ExitCode::kOk;
  const auto payload = status.GetPayload(kPayloadUrl);
  int code = 0;
  if (payload.has_value() && absl::SimpleAtoi(std::string(*payload), &code) && code != 0 &&
      v1::TrainerExitCode_IsValid(code)) {
    return static_cast<ExitCode>(code);
  }
  return ExitCode::kOther;
}

absl::Status StatusFromException(const std::exception& e, const char* where) {
  // c10::Error::what() carries a C++ backtrace; the one-line reason is the message alone.
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string message = c10_error ? c10_error->msg() : e.what();
  if (const size_t nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  const std::string reason = absl::StrCat(where, ": ", message);
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) {
    return WithExitCode(absl::ResourceExhaustedError(reason), ExitCode::kOutOfMemory);
  }
  if (dynamic_cast<const c10::DistError*>(&e) != nullptr) {
    return WithExitCode(absl::UnavailableError(reason), ExitCode::kDistributed);
  }
  return WithExitCode(absl::InternalError(reason), ExitCode::kOther);
}

}  // namespace gauntlet
