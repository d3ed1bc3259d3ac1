#include "trainer/data/corpus.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/posix_fs.h"

namespace gauntlet {
namespace {


// Accumulates corpus bytes up to an optional bound.
class CorpusBuffer {
 public:
  explicit CorpusBuffer(int64_t max_bytes) : max_bytes_(max_bytes) {}
  bool full() const { return max_bytes_ > 0 && static_cast<int64_t>(bytes_.size()) >= max_bytes_; }
  // How many more bytes may be appended.
  size_t room() const {
    return max_bytes_ > 0 ? static_cast<size_t>(max_bytes_) - bytes_.size() : SIZE_MAX;
  }
  void Append(const char* data, size_t n) { bytes_.append(data, std::min(n, room())); }
  std::string Take() { return std::move(bytes_); }
  size_t size() const { return bytes_.size(); }

 private:
  int64_t max_bytes_;
  std::string bytes_;
};

bool Selected(const std::string& name, const v1::DataSpec& spec) {
  if (spec.include_suffixes().empty()) return true;
  return std::any_of(spec.include_suffixes().begin(), spec.include_suffixes().end(),
                     [&](const std::string& suffix) { return absl::EndsWith(name, suffix); });
}

bool IsTarball(const std::string& path) {
  static constexpr const char* kSuffixes[] = {".tar", ".tar.gz",  ".tgz",  ".tar.xz",
                                              ".txz", ".tar.bz2", ".tbz2", ".tar.zst"};
  return std::any_of(std::begin(kSuffixes), std::end(kSuffixes),
                     [&](const char* s) { return absl::EndsWith(path, s); });
}

absl::Status AppendFile(const std::string& path, CorpusBuffer& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(
        absl::StrCat("data.path: cannot open ", path, ": ", std::strerror(errno)));
  }
  std::vector<char> block(1 << 20);
  while (!out.full() && in) {
    in.read(block.data(), static_cast<std::streamsize>(std::min(block.size(), out.room())));
    out.Append(block.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("data.path: error reading ", path));
  return absl::OkStatus();
}

absl::Status AppendDirectory(const std::string& root, const v1::DataSpec& spec, CorpusBuffer& out) {
  // Sorted so that the corpus (and its cache key) does not depend on directory order.
  absl::StatusOr<std::vector<std::string>> all = ListFilesRecursively(root);
  if (!all.ok()) {
    return absl::PermissionDeniedError(absl::StrCat("data.path: ", all.status().message()));
  }
  std::vector<std::string> files;
  for (const std::string& name : *all) {
    if (Selected(name, spec)) files.push_back(name);
  }
  for (const std::string& file : files) {
    if (out.full()) break;
    if (absl::Status s = AppendFile(file, out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

absl::Status AppendTarball(const std::string& path, const v1::DataSpec& spec, CorpusBuffer& out) {
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  auto fail = [&](const std::string& what) {
    const char* why = archive_error_string(a.get());
    return absl::DataLossError(absl::StrCat("data.path: unreadable archive ", path, " (", what,
                                            "): ", why != nullptr ? why : "unknown error"));
  };
  // Streams: libarchive decompresses block by block, so a 1 GB .tar.xz is never held whole.
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return fail("open");
  }
  std::vector<char> block(1 << 20);
  archive_entry* entry = nullptr;
  while (!out.full()) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail("header");
    const char* name = archive_entry_pathname(entry);
    if (archive_entry_filetype(entry) != AE_IFREG || name == nullptr || !Selected(name, spec)) {
      continue;  // the next header call skips the entry's data
    }
    while (!out.full()) {
      const la_ssize_t n = archive_read_data(a.get(), block.data(), block.size());
      if (n < 0) return fail(absl::StrCat("entry ", name));
      if (n == 0) break;
      out.Append(block.data(), static_cast<size_t>(n));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadCorpus(const v1::DataSpec& spec) {
  const std::string& path = spec.path();
  if (path.empty()) return absl::InvalidArgumentError("data.path: must name a corpus");
  if (spec.max_bytes() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.max_bytes: must be >= 0, got ", spec.max_bytes()));
  }
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("data.path: no such file or directory: ", path));
  }
  CorpusBuffer out(spec.max_bytes());
  absl::Status read;
  const bool is_directory = IsDirectory(path);
  if (is_directory) {
    read = AppendDirectory(path, spec, out);
  } else if (IsTarball(path)) {
    read = AppendTarball(path, spec, out);
  } else {
    read = AppendFile(path, out);
  }
  if (!read.ok()) return read;
  if (out.size() == 0) {
    std::string why = "corpus is empty";
    const bool filtered = is_directory || IsTarball(path);
    if (filtered && !spec.include_suffixes().empty()) {
      absl::StrAppend(&why, " (no file matches include_suffixes [",
                      absl::StrJoin(spec.include_suffixes(), ", "), "])");
    }
    return absl::InvalidArgumentError(absl::StrCat("data.path: ", path, ": ", why));
  }
  return out.Take();
}

}  // namespace gauntlet
