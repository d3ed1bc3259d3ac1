#ifndef GAUNTLET_TRAINER_DATA_ATOMIC_FILE_H_
#define GAUNTLET_TRAINER_DATA_ATOMIC_FILE_H_

// Writing a file so that readers see either nothing or all of it: bytes go to a uniquely named
// temporary file in the same directory, which Commit() fsyncs and renames over the target.
// Concurrent writers of the same target never interleave; the last rename wins.

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet {

class AtomicFileWriter {
 public:
  // Creates the target's directory if needed and opens the temporary file.
  static absl::StatusOr<AtomicFileWriter> Open(const std::string& path);

  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  // Removes the temporary file unless Commit() succeeded.
  ~AtomicFileWriter();

  absl::Status Write(std::string_view bytes);
  // Flushes, fsyncs and renames the temporary file to the target.
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string tmp_path, std::FILE* file)
      : path_(std::move(path)), tmp_path_(std::move(tmp_path)), file_(file) {}

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_;
  bool committed_ = false;
};

// Convenience: the whole contents at once.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_ATOMIC_FILE_H_
