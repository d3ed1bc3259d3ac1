#ifndef GAUNTLET_TRAINER_DATA_TOKEN_DATASET_H_
#define GAUNTLET_TRAINER_DATA_TOKEN_DATASET_H_

// A tokenized corpus, cached on disk and memory-mapped, split by position into train and val.
// Torch-free: batch_sampler.h turns windows into tensors.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/data/tokenizer.h"

namespace gauntlet {
namespace v1 {
// Forward-declared, not included: LibTorch ships older google/protobuf headers that shadow the
// system ones, so torch translation units (batch_sampler, evaluator) must not see a .pb.h.
class DataSpec;
}  // namespace v1

enum class Split { kTrain, kVal };
const char* SplitName(Split split);

// The token cache directory for a spec: spec.cache_dir, else $GAUNTLET_CACHE, else
// $HOME/.cache/gauntlet/tokens.
std::string ResolveCacheDir(const v1::DataSpec& spec);

class TokenDataset {
 public:
  // Reads the corpus (ReadCorpus), hashes it with the tokenizer kind, and maps
  // <cache_dir>/<sha256>.tokens, building it first when absent or invalid. The build writes a
  // temporary file and renames it into place, so concurrent ranks and trials never see a partial
  // file (at worst several build the same bytes and the last rename wins).
  // Errors: those of ReadCorpus; InvalidArgument naming data.tokenizer / data.val_fraction;
  // Internal/Unavailable naming the cache path when it cannot be written or mapped.
  static absl::StatusOr<TokenDataset> Open(const v1::DataSpec& spec);

  // Cheap to copy: copies share the read-only mapping.
  TokenDataset(const TokenDataset&) = default;
  TokenDataset& operator=(const TokenDataset&) = default;
  TokenDataset(TokenDataset&&) = default;
  TokenDataset& operator=(TokenDataset&&) = default;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t vocab_size() const { return tokenizer_->vocab_size(); }
  // Token counts: train is the first floor((1 - val_fraction) * N) tokens, val the rest (the
  // reference scripts' split).
  int64_t size(Split split) const { return split == Split::kTrain ? train_size_ : val_size_; }
  int64_t train_size() const { return train_size_; }
  int64_t val_size() const { return val_size_; }
  int64_t total_size() const { return train_size_ + val_size_; }

  // Token `i` of a split (0 <= i < size(split); checked only in debug builds).
  uint32_t at(Split split, int64_t i) const;
  // Copies tokens [start, start + length) of a split into `out` as int64 (what torch wants).
  // OutOfRange when the range leaves the split.
  absl::Status CopyWindow(Split split, int64_t start, int64_t length, int64_t* out) const;

  // Number of length-(seq_len + 1) windows (inputs plus the shifted target) at stride 1:
  // size(split) - seq_len, or 0 when the split is too short.
  int64_t NumWindows(Split split, int64_t seq_len) const;
  // OK when the split holds at least one window of seq_len + 1 tokens; otherwise
  // InvalidArgument naming data.path, the split and model.seq_len.
  absl::Status CheckWindow(Split split, int64_t seq_len) const;

  // sha256 of (format version, tokenizer kind, corpus bytes): the cache key.
  const std::string& content_hash() const { return content_hash_; }
  const std::string& cache_path() const { return cache_path_; }
  const std::string& corpus_path() const { return corpus_path_; }
  // Bytes per token in the cache file: 2 when vocab_size() <= 65536, else 4.
  int token_bytes() const { return token_bytes_; }

 private:
  class Mapping;  // the mmap'd cache file
  TokenDataset() = default;

  std::shared_ptr<const Mapping> mapping_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  const uint8_t* tokens_ = nullptr;  // into mapping_
  int token_bytes_ = 2;
  int64_t train_size_ = 0;
  int64_t val_size_ = 0;
  std::string content_hash_;
  std::string cache_path_;
  std::string corpus_path_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_TOKEN_DATASET_H_
