#ifndef GAUNTLET_TRAINER_DATA_CORPUS_H_
#define GAUNTLET_TRAINER_DATA_CORPUS_H_

// Reading a training corpus into memory. Torch-free.

#include <string>

#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

// Returns the corpus bytes named by spec.path:
//  - a regular file: its bytes (include_suffixes does not apply to a file named directly);
//  - a directory: every regular file below it whose name ends with one of
//    spec.include_suffixes (all files when empty), in byte-wise sorted path order, concatenated;
//  - a tarball (a name ending .tar, .tar.gz/.tgz, .tar.xz/.txz, .tar.bz2/.tbz2 or .tar.zst; read
//    through libarchive, streamed): its regular-file entries in archive order, filtered the same
//    way. The name decides, so a corrupt tarball is an error rather than text.
// Reading stops after spec.max_bytes bytes when it is > 0 (the last file may be cut short).
// Errors name the field and path: NotFound for a missing path, InvalidArgument for an empty
// corpus or a negative max_bytes, DataLoss for an unreadable or corrupt archive.
absl::StatusOr<std::string> ReadCorpus(const v1::DataSpec& spec);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_CORPUS_H_
