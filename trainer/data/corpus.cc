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

constexpr size_t kPieceBytes = 1 << 20;

using Sink =
    absl::FunctionRef<absl::Status(const std::string& document, std::string_view bytes, bool end)>;

// Hands document pieces to the sink while counting bytes against an optional bound.
class Budget {
 public:
  explicit Budget(int64_t max_bytes) : max_bytes_(max_bytes) {}
  bool exhausted() const { return max_bytes_ > 0 && total_ >= max_bytes_; }
  // How many of n bytes may still be read.
  size_t Allow(size_t n) const {
    return max_bytes_ > 0 ? std::min<size_t>(n, static_cast<size_t>(max_bytes_ - total_)) : n;
  }
  void Count(size_t n) { total_ += static_cast<int64_t>(n); }
  int64_t total() const { return total_; }

 private:
  int64_t max_bytes_;
  int64_t total_ = 0;
};

bool Selected(const std::string& name, const CorpusSource& source) {
  if (source.include_suffixes.empty()) return true;
  return std::any_of(source.include_suffixes.begin(), source.include_suffixes.end(),
                     [&](const std::string& suffix) { return absl::EndsWith(name, suffix); });
}

bool IsTarball(const std::string& path) {
  static constexpr const char* kSuffixes[] = {".tar", ".tar.gz",  ".tgz",  ".tar.xz",
                                              ".txz", ".tar.bz2", ".tbz2", ".tar.zst"};
  return std::any_of(std::begin(kSuffixes), std::end(kSuffixes),
                     [&](const char* s) { return absl::EndsWith(path, s); });
}

absl::Status StreamFile(const CorpusSource& source, const std::string& path,
                        const std::string& name, Budget& budget, Sink sink) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::PermissionDeniedError(absl::StrCat(source.field, ".path: cannot open ", path, ": ",
                                                    std::strerror(errno)));
  }
  std::vector<char> block(kPieceBytes);
  while (!budget.exhausted() && in) {
    in.read(block.data(), static_cast<std::streamsize>(budget.Allow(block.size())));
    const size_t n = static_cast<size_t>(in.gcount());
    budget.Count(n);
    if (n > 0) {
      if (absl::Status s = sink(name, std::string_view(block.data(), n), false); !s.ok()) return s;
    }
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(source.field, ".path: error reading ", path));
  return sink(name, std::string_view(), true);
}

absl::Status StreamDirectory(const CorpusSource& source, Budget& budget, Sink sink) {
  // Sorted so that the corpus (and its cache key) does not depend on directory order.
  absl::StatusOr<std::vector<std::string>> all = ListFilesRecursively(source.path);
  if (!all.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(source.field, ".path: ", all.status().message()));
  }
  std::string root = source.path;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  for (const std::string& file : *all) {
    if (budget.exhausted()) break;
    if (!Selected(file, source)) continue;
    std::string name = file;
    if (absl::StartsWith(name, root + "/")) name = name.substr(root.size() + 1);
    if (absl::Status s = StreamFile(source, file, name, budget, sink); !s.ok()) return s;
  }
  return absl::OkStatus();
}

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

absl::Status StreamTarball(const CorpusSource& source, Budget& budget, Sink sink) {
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  auto fail = [&](const std::string& what) {
    const char* why = archive_error_string(a.get());
    return absl::DataLossError(absl::StrCat(source.field, ".path: unreadable archive ",
                                            source.path, " (", what,
                                            "): ", why != nullptr ? why : "unknown error"));
  };
  // Streams: libarchive decompresses block by block, so a 1 GB .tar.xz is never held whole.
  if (archive_read_open_filename(a.get(), source.path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return fail("open");
  }
  std::vector<char> block(kPieceBytes);
  archive_entry* entry = nullptr;
  while (!budget.exhausted()) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return fail("header");
    const char* raw_name = archive_entry_pathname(entry);
    if (archive_entry_filetype(entry) != AE_IFREG || raw_name == nullptr) continue;
    const std::string name = raw_name;
    if (!Selected(name, source)) continue;  // the next header call skips the entry's data
    while (!budget.exhausted()) {
      const la_ssize_t n = archive_read_data(a.get(), block.data(), budget.Allow(block.size()));
      if (n < 0) return fail(absl::StrCat("entry ", name));
      if (n == 0) break;
      budget.Count(static_cast<size_t>(n));
      absl::Status s = sink(name, std::string_view(block.data(), static_cast<size_t>(n)), false);
      if (!s.ok()) return s;
    }
    if (absl::Status s = sink(name, std::string_view(), true); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

CorpusSource SourceOf(const v1::DataSpec& spec) {
  CorpusSource source;
  source.path = spec.path();
  source.include_suffixes.assign(spec.include_suffixes().begin(), spec.include_suffixes().end());
  source.max_bytes = spec.max_bytes();
  return source;
}

absl::Status ForEachDocumentPiece(const CorpusSource& source, Sink sink) {
  const std::string& path = source.path;
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source.field, ".path: must name a corpus"));
  }
  if (source.max_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.field, ".max_bytes: must be >= 0, got ", source.max_bytes));
  }
  if (!PathExists(path)) {
    return absl::NotFoundError(
        absl::StrCat(source.field, ".path: no such file or directory: ", path));
  }
  Budget budget(source.max_bytes);
  absl::Status read;
  const bool is_directory = IsDirectory(path);
  const bool is_tarball = !is_directory && IsTarball(path);
  if (is_directory) {
    read = StreamDirectory(source, budget, sink);
  } else if (is_tarball) {
    read = StreamTarball(source, budget, sink);
  } else {
    read = StreamFile(source, path, path, budget, sink);
  }
  if (!read.ok()) return read;
  if (budget.total() == 0) {
    std::string why = "corpus is empty";
    if ((is_directory || is_tarball) && !source.include_suffixes.empty()) {
      absl::StrAppend(&why, " (no file matches include_suffixes [",
                      absl::StrJoin(source.include_suffixes, ", "), "])");
    }
    return absl::InvalidArgumentError(absl::StrCat(source.field, ".path: ", path, ": ", why));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadCorpus(const v1::DataSpec& spec) {
  std::string corpus;
  absl::Status s = ForEachDocumentPiece(
      SourceOf(spec), [&](const std::string&, std::string_view bytes, bool) {
        corpus.append(bytes.data(), bytes.size());
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  return corpus;
}

}  // namespace gauntlet
