#ifndef GAUNTLET_COMMON_POSIX_FS_H_
#define GAUNTLET_COMMON_POSIX_FS_H_

// Directory helpers on plain POSIX calls. Binaries that link LibTorch must not call
// std::filesystem: the PyPI wheel's libtorch.so and libtorch_cpu.so export their own copies of
// std::filesystem (from an older libstdc++), calls bind to those at run time, and mixing the two
// implementations crashed remove_all in the CUDA trainer.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet {

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// mkdir -p.
absl::Status MakeDirectories(const std::string& path);
// rm -rf; a missing path is not an error.
absl::Status RemoveTree(const std::string& path);
// rename(2).
absl::Status RenamePath(const std::string& from, const std::string& to);
// Names in `dir` (not "." or ".."), unsorted.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);
// Every regular file below `root` (symlinks not followed), as full paths, sorted.
absl::StatusOr<std::vector<std::string>> ListFilesRecursively(const std::string& root);
// "a/b/c.txt" -> "a/b"; "c.txt" -> "".
std::string ParentPath(const std::string& path);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_POSIX_FS_H_
