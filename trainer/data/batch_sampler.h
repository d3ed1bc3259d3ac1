#ifndef GAUNTLET_TRAINER_DATA_BATCH_SAMPLER_H_
#define GAUNTLET_TRAINER_DATA_BATCH_SAMPLER_H_

// Deterministic random batches of training windows, and window tensors for evaluation.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/data/token_dataset.h"

namespace gauntlet {

// (B, T) int64 CPU tensors; targets are inputs shifted left by one token.
struct Batch {
  torch::Tensor inputs;
  torch::Tensor targets;
};

// Tokens [start, start + length) of a split as a (length,) int64 CPU tensor.
absl::StatusOr<torch::Tensor> WindowTensor(const TokenDataset& dataset, Split split, int64_t start,
                                           int64_t length);
// A batch whose row b is the window starting at starts[b]: inputs [s, s+T), targets [s+1, s+T+1).
absl::StatusOr<Batch> MakeBatch(const TokenDataset& dataset, Split split,
                                const std::vector<int64_t>& starts, int64_t seq_len);

// Samples batch_size window offsets uniformly (with replacement) from the split's stride-1
// windows, like the reference's shuffled DataLoader over every offset. With several sources, each
// window first picks a source with probability equal to its weight, then a window inside it (a
// window never spans two sources). The stream is a
// counter-based generator keyed by (seed, rank): its whole position is the small State below, so
// a checkpoint restores it exactly and each data-parallel rank draws a different stream.
class BatchSampler {
 public:
  struct State {
    int64_t seed = 0;
    int64_t rank = 0;
    // 64-bit words consumed: batches * batch_size * (1 with one source, else 2), on every rank.
    uint64_t draws = 0;
    int64_t batches = 0;  // batches produced so far (for logging and sanity checks)
    bool operator==(const State& o) const {
      return seed == o.seed && rank == o.rank && draws == o.draws && batches == o.batches;
    }
  };

  // InvalidArgument (naming model.seq_len / train.batch_size / data.path / data.sources) when
  // seq_len or batch_size is < 1 or the split (or a source of it) holds no full window.
  static absl::StatusOr<BatchSampler> Create(const TokenDataset& dataset, Split split,
                                             int64_t seq_len, int64_t batch_size, int64_t seed,
                                             int64_t rank);

  Batch Next();
  // The window offsets Next() would use, without building tensors (advances the state too).
  std::vector<int64_t> NextStarts();

  State state() const { return state_; }
  // FailedPrecondition when the state was saved for another (seed, rank).
  absl::Status Restore(const State& state);

  int64_t seq_len() const { return seq_len_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t num_windows() const { return num_windows_; }

 private:
  BatchSampler(const TokenDataset& dataset, Split split, int64_t seq_len, int64_t batch_size,
               int64_t seed, int64_t rank);
  uint64_t NextWord();
  int64_t NextOffset();

  TokenDataset dataset_;  // shares the mapping
  Split split_;
  int64_t seq_len_;
  int64_t batch_size_;
  int64_t num_windows_;
  uint64_t key_;  // derived from (seed, rank)
  State state_;
  struct Segment {
    int64_t begin;      // first token of the source in the split
    int64_t windows;    // its stride-1 windows
    uint64_t below;     // a draw below this (and above the previous segment's) picks it
  };
  std::vector<Segment> segments_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DATA_BATCH_SAMPLER_H_
