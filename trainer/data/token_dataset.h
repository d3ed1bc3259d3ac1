#ifndef GAUNTLET_TRAINER_DATA_TOKEN_DATASET_H_
#define GAUNTLET_TRAINER_DATA_TOKEN_DATASET_H_

// A tokenized corpus (one source or a weighted mixture), cached on disk and memory-mapped, split
// into train and val by position or by document. Torch-free: batch_sampler.h turns windows into
// tensors.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

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

struct OpenOptions {
  // Encoding threads when the cache is built; 0 = every core.
  int num_threads = 0;
  // Called now and then with the phase ("hash", "train-tokenizer", "tokenize", "assemble"), the
  // corpus bytes done in it and the total (0 when unknown).
  std::function<void(const char* phase, int64_t done, int64_t total)> progress;
};

class TokenDataset {
 public:
  // One corpus of the dataset: its tokens are [train_begin, train_begin + train_size) of the
  // train split and [val_begin, val_begin + val_size) of the val split.
  struct Source {
    std::string name;
    double weight = 1;  // normalised over the sources
    int64_t train_begin = 0, train_size = 0, val_begin = 0, val_size = 0;
    int64_t train_documents = 0, val_documents = 0;
  };

  // Streams the corpus (ForEachDocumentPiece) to hash it with the tokenizer options and maps
  // <cache_dir>/<sha256>.tokens, building it first when absent or invalid: documents are split
  // into train and val (data.split), tokenized on every core with bounded memory, and written as
  // every source's train tokens followed by every source's val tokens. A bpe/unigram model is
  // trained on a deterministic sample of training lines and cached as <cache_dir>/<sha256>.model
  // (keyed by corpus and options), unless data.tokenizer_model names one. Files are written to a
  // temporary name and renamed into place, so concurrent ranks and trials never see a partial
  // file (at worst several build the same bytes and the last rename wins).
  // Errors: those of ForEachDocumentPiece; InvalidArgument naming data.tokenizer,
  // data.vocab_size, data.val_fraction, data.split or data.sources; Internal/Unavailable naming
  // the cache path when it cannot be written or mapped.
  static absl::StatusOr<TokenDataset> Open(const v1::DataSpec& spec,
                                           const OpenOptions& options = {});

  // Cheap to copy: copies share the read-only mapping.
  TokenDataset(const TokenDataset&) = default;
  TokenDataset& operator=(const TokenDataset&) = default;
  TokenDataset(TokenDataset&&) = default;
  TokenDataset& operator=(TokenDataset&&) = default;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t vocab_size() const { return tokenizer_->vocab_size(); }
  // Token counts. With one source and the position split, train is the first
  // floor((1 - val_fraction) * N) tokens and val the rest (the reference scripts' split).
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

  // The sources, in spec order (one for a spec with `path`).
  const std::vector<Source>& sources() const { return *sources_; }
  // Tokens of the training split per epoch of the most-sampled source: training on T tokens
  // covers max over sources of (weight * T / train_size) epochs of some source.
  double EpochsFor(int64_t tokens) const;

  // sha256 of (format version, tokenizer, split options, documents): the cache key.
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
  std::shared_ptr<const std::vector<Source>> sources_;
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
