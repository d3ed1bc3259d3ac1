#include "trainer/dist/dist_env.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

absl::Status ReadInt(const std::function<std::optional<std::string>(const std::string&)>& getenv,
                     const std::string& name, int* out) {
  std::optional<std::string> value = getenv(name);
  if (!value.has_value()) return absl::OkStatus();
  if (!absl::SimpleAtoi(*value, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment ", name, ": not an integer: \"", *value, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DistEnv> DistEnvFrom(
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  DistEnv env;
  for (const auto& [name, field] : {std::pair<const char*, int*>{"RANK", &env.rank},
                                    {"LOCAL_RANK", &env.local_rank},
                                    {"WORLD_SIZE", &env.world_size},
                                    {"MASTER_PORT", &env.master_port}}) {
    if (absl::Status s = ReadInt(getenv, name, field); !s.ok()) return s;
  }
  if (std::optional<std::string> addr = getenv("MASTER_ADDR"); addr.has_value()) {
    env.master_addr = *addr;
  }
  if (env.world_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment WORLD_SIZE: must be >= 1, got ", env.world_size));
  }
  if (env.rank < 0 || env.rank >= env.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("environment RANK: ", env.rank,
                                                   " is not in [0, WORLD_SIZE=", env.world_size,
                                                   ")"));
  }
  if (env.local_rank < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment LOCAL_RANK: must be >= 0, got ", env.local_rank));
  }
  if (env.world_size > 1 && (env.master_port <= 0 || env.master_port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment MASTER_PORT: a port in [1, 65535] is required when WORLD_SIZE > 1, got ",
        env.master_port));
  }
  if (env.world_size > 1 && env.master_addr.empty()) {
    return absl::InvalidArgumentError("environment MASTER_ADDR: empty");
  }
  return env;
}

absl::StatusOr<DistEnv> DistEnvFromProcess() {
  return DistEnvFrom([](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace gauntlet
