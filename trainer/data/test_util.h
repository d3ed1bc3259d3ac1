#ifndef GAUNTLET_TRAINER_DATA_TEST_UTIL_H_
#define GAUNTLET_TRAINER_DATA_TEST_UTIL_H_

// Helpers for the data and eval tests: scratch directories, files and real tarballs.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/data/token_dataset.h"

namespace gauntlet {
namespace testing {

// A fresh directory under $TEST_TMPDIR (or /tmp).
std::string MakeTempDir();
// Writes `contents` to `path`, creating parent directories.
void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

// Writes a tar archive at `path` holding `entries` (name, contents) in order, compressed with
// `compression`: "none", "gzip" or "xz". Directories named in entry paths are not added.
absl::Status WriteTarball(const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& entries,
                          const std::string& compression);

// A deterministic pseudo-random text of `n` bytes over a small alphabet.
std::string RandomText(size_t n, unsigned seed, const std::string& alphabet);

// Deterministic English-like text of about `n` bytes: lines of words drawn from a small list
// (what a subword tokenizer can learn pieces from).
std::string WordText(size_t n, unsigned seed);

// A mixture of text corpora: one directory per source of `documents` files each, with weights;
// document split. Opens it with its own cache dir.
absl::StatusOr<TokenDataset> OpenMixtureDataset(
    const std::vector<std::pair<std::string, double>>& text_and_weight, int documents,
    double val_fraction = 0.1);

// Writes `text` as a corpus file in a fresh directory and opens it with its own cache dir (torch
// tests cannot build a v1::DataSpec themselves: see token_dataset.h).
absl::StatusOr<TokenDataset> OpenTextDataset(const std::string& text,
                                             const std::string& tokenizer = "char",
                                             double val_fraction = 0.1);

// The repository's data/tinyshakespeare/input.txt in the test's runfiles; an error naming the
// missing data dependency when the test does not declare it.
absl::StatusOr<std::string> TinyShakespearePath();

}  // namespace testing
}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_TEST_UTIL_H_
