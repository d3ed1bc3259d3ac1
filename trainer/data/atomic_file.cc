#include "trainer/data/atomic_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/posix_fs.h"

namespace gauntlet {
namespace {

absl::Status ErrnoError(const char* what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Open(const std::string& path) {
  const std::string parent = ParentPath(path);
  if (!parent.empty()) {
    if (absl::Status s = MakeDirectories(parent); !s.ok()) return absl::UnavailableError(s.message());
  }
  // mkstemp gives a name no other process or thread holds.
  std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".XXXXXX");
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return ErrnoError("cannot create", tmp);
  std::FILE* file = fdopen(fd, "wb");
  if (file == nullptr) {
    close(fd);
    unlink(tmp.c_str());
    return ErrnoError("cannot open", tmp);
  }
  // mkstemp makes the file 0600; a shared cache should be readable like any other file.
  fchmod(fd, 0644);
  return AtomicFileWriter(path, std::move(tmp), file);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& other) noexcept
    : path_(std::move(other.path_)),
      tmp_path_(std::move(other.tmp_path_)),
      file_(other.file_),
      committed_(other.committed_) {
  other.file_ = nullptr;
  other.committed_ = true;  // nothing left for the moved-from object to clean up
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_ != nullptr) std::fclose(file_);
  if (!committed_) unlink(tmp_path_.c_str());
}

absl::Status AtomicFileWriter::Write(std::string_view bytes) {
  if (file_ == nullptr) return absl::FailedPreconditionError("write after commit: " + path_);
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return ErrnoError("cannot write", tmp_path_);
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (file_ == nullptr) return absl::FailedPreconditionError("commit twice: " + path_);
  std::FILE* file = file_;
  file_ = nullptr;
  const bool flushed = std::fflush(file) == 0 && fsync(fileno(file)) == 0;
  const bool closed = std::fclose(file) == 0;
  if (!flushed || !closed) return ErrnoError("cannot flush", tmp_path_);
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    return ErrnoError("cannot rename to", path_);
  committed_ = true;
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Open(path);
  if (!writer.ok()) return writer.status();
  if (absl::Status s = writer->Write(contents); !s.ok()) return s;
  return writer->Commit();
}

}  // namespace gauntlet
