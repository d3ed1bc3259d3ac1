#include "trainer/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/posix_fs.h"

namespace gauntlet {
namespace {


constexpr char kStepPrefix[] = "step_";
constexpr char kFileName[] = "checkpoint.pt";
constexpr char kTmpPrefix[] = ".tmp-";

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAndSync(const std::string& path, const std::vector<char>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("opening", path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoError("writing", path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = ErrnoError("fsync", path);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return ErrnoError("closing", path);
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("opening directory", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoError("fsync directory", path);
  return absl::OkStatus();
}

std::optional<int64_t> ParseStepDir(const std::string& name) {
  if (!absl::StartsWith(name, kStepPrefix)) return std::nullopt;
  int64_t step = 0;
  if (!absl::SimpleAtoi(name.substr(std::strlen(kStepPrefix)), &step) || step < 0) {
    return std::nullopt;
  }
  return step;
}

}  // namespace

CheckpointDir::CheckpointDir(std::string dir, int keep_last)
    : dir_(std::move(dir)), keep_last_(std::max(1, keep_last)) {}

std::string CheckpointDir::StepDir(int64_t step) const {
  return absl::StrFormat("%s/%s%09d", dir_, kStepPrefix, step);
}

absl::Status CheckpointDir::Save(const Checkpoint& checkpoint) {
  if (absl::Status s = MakeDirectories(dir_); !s.ok()) return s;

  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  dict.insert("step", c10::IValue(checkpoint.step));
  c10::Dict<std::string, torch::Tensor> tensors;
  for (const auto& [key, tensor] : checkpoint.tensors) {
    tensors.insert(key, tensor.detach().to(torch::kCPU).contiguous());
  }
  c10::Dict<std::string, int64_t> ints;
  for (const auto& [key, value] : checkpoint.ints) ints.insert(key, value);
  c10::Dict<std::string, double> doubles;
  for (const auto& [key, value] : checkpoint.doubles) doubles.insert(key, value);
  dict.insert("tensors", c10::IValue(tensors));
  dict.insert("ints", c10::IValue(ints));
  dict.insert("doubles", c10::IValue(doubles));
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));

  const std::string final_dir = StepDir(checkpoint.step);
  const std::string tmp_dir =
      absl::StrFormat("%s/%s%s%09d-%d", dir_, kTmpPrefix, kStepPrefix, checkpoint.step, getpid());
  if (absl::Status s = RemoveTree(tmp_dir); !s.ok()) return s;
  if (absl::Status s = MakeDirectories(tmp_dir); !s.ok()) return s;
  if (absl::Status s = WriteAndSync(absl::StrCat(tmp_dir, "/", kFileName), bytes); !s.ok()) {
    RemoveTree(tmp_dir).IgnoreError();
    return s;
  }
  // A resumed run may write a step that already exists; rename(2) cannot replace a non-empty
  // directory, so move the old one aside first (it is identical in content anyway).
  const std::string old_dir = absl::StrCat(tmp_dir, ".old");
  const bool replacing = PathExists(final_dir);
  if (replacing) {
    if (absl::Status s = RenamePath(final_dir, old_dir); !s.ok()) return s;
  }
  if (absl::Status s = RenamePath(tmp_dir, final_dir); !s.ok()) return s;
  if (replacing) RemoveTree(old_dir).IgnoreError();
  if (absl::Status s = SyncDir(dir_); !s.ok()) return s;

  // Keep the newest keep_last; drop temporaries a crashed writer left behind.
  absl::StatusOr<std::vector<int64_t>> steps = ListSteps();
  if (!steps.ok()) return steps.status();
  for (size_t i = 0; i + keep_last_ < steps->size(); ++i) {
    RemoveTree(StepDir((*steps)[i])).IgnoreError();
  }
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (absl::StartsWith(name, kTmpPrefix)) RemoveTree(absl::StrCat(dir_, "/", name)).IgnoreError();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> CheckpointDir::ListSteps() const {
  std::vector<int64_t> steps;
  if (!PathExists(dir_)) return steps;
  absl::StatusOr<std::vector<std::string>> names = ListDirectory(dir_);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    std::optional<int64_t> step = ParseStepDir(name);
    if (step.has_value() && PathExists(absl::StrCat(dir_, "/", name, "/", kFileName))) {
      steps.push_back(*step);
    }
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::StatusOr<Checkpoint> CheckpointDir::Load(int64_t step) const {
  const std::string path = absl::StrCat(StepDir(step), "/", kFileName);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("checkpoint ", path, " not found"));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Checkpoint checkpoint;
  try {
    const c10::IValue value = torch::pickle_load(bytes);
    const c10::Dict<c10::IValue, c10::IValue> dict = value.toGenericDict();
    checkpoint.step = dict.at("step").toInt();
    for (const auto& item : dict.at("tensors").toGenericDict()) {
      checkpoint.tensors[item.key().toStringRef()] = item.value().toTensor();
    }
    for (const auto& item : dict.at("ints").toGenericDict()) {
      checkpoint.ints[item.key().toStringRef()] = item.value().toInt();
    }
    for (const auto& item : dict.at("doubles").toGenericDict()) {
      checkpoint.doubles[item.key().toStringRef()] = item.value().toDouble();
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, " is unreadable: ", e.what()));
  }
  if (checkpoint.step != step) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, " holds step ", checkpoint.step));
  }
  return checkpoint;
}

absl::StatusOr<std::optional<Checkpoint>> CheckpointDir::LoadLatest() const {
  absl::StatusOr<std::vector<int64_t>> steps = ListSteps();
  if (!steps.ok()) return steps.status();
  if (steps->empty()) return std::optional<Checkpoint>();
  absl::StatusOr<Checkpoint> checkpoint = Load(steps->back());
  if (!checkpoint.ok()) return checkpoint.status();
  return std::optional<Checkpoint>(*std::move(checkpoint));
}

}  // namespace gauntlet
