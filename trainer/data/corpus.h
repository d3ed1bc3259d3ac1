#ifndef GAUNTLET_TRAINER_DATA_CORPUS_H_
#define GAUNTLET_TRAINER_DATA_CORPUS_H_

// Reading a training corpus: streamed document by document, or whole into memory. Torch-free.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

// One corpus: a file, a directory or a tarball, filtered and bounded.
struct CorpusSource {
  std::string path;
  std::vector<std::string> include_suffixes;
  int64_t max_bytes = 0;  // 0: no bound
  // Prefix of error messages, e.g. "data" or "data.sources[1]".
  std::string field = "data";
};

// The single source a DataSpec without `sources` names.
CorpusSource SourceOf(const v1::DataSpec& spec);

// Streams the corpus's documents in a fixed order, calling `sink(document, bytes, end)` with
// consecutive pieces of each document (at most ~1 MiB each, cut anywhere, even mid-character);
// `end` is true on a document's last piece (which may be empty). A document is:
//  - a regular file: the file (include_suffixes does not apply to a file named directly);
//  - a directory: every regular file below it whose name ends with one of include_suffixes (all
//    files when empty), in byte-wise sorted path order, named by its path relative to the root;
//  - a tarball (a name ending .tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.bz2/.tbz2 or .tar.zst; read
//    through libarchive, streamed): its regular-file entries in archive order, filtered the same
//    way, named by the entry's path. The name decides, so a corrupt tarball is an error.
// Reading stops after max_bytes bytes when it is > 0 (the last document may be cut short).
// Memory stays bounded whatever the corpus size. A non-OK status from `sink` stops the walk and
// is returned. Errors name the field and path: NotFound for a missing path, InvalidArgument for
// an empty corpus or a negative max_bytes, DataLoss for an unreadable or corrupt archive.
absl::Status ForEachDocumentPiece(
    const CorpusSource& source,
    absl::FunctionRef<absl::Status(const std::string& document, std::string_view bytes, bool end)>
        sink);

// The whole corpus of a DataSpec's `path` in memory (its documents concatenated).
absl::StatusOr<std::string> ReadCorpus(const v1::DataSpec& spec);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_CORPUS_H_
