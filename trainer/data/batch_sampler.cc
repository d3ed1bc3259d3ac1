#include "trainer/data/batch_sampler.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

// SplitMix64's finaliser: a bijective 64-bit mix with full avalanche, so hashing a counter gives
// an independent-looking stream whose position is just the counter.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

}  // namespace

absl::StatusOr<torch::Tensor> WindowTensor(const TokenDataset& dataset, Split split, int64_t start,
                                           int64_t length) {
  torch::Tensor out = torch::empty({length}, torch::kInt64);
  if (absl::Status s = dataset.CopyWindow(split, start, length, out.data_ptr<int64_t>()); !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<Batch> MakeBatch(const TokenDataset& dataset, Split split,
                                const std::vector<int64_t>& starts, int64_t seq_len) {
  const int64_t rows = static_cast<int64_t>(starts.size());
  // One (B, T + 1) buffer; inputs and targets are views shifted by one column.
  torch::Tensor windows = torch::empty({rows, seq_len + 1}, torch::kInt64);
  int64_t* data = windows.data_ptr<int64_t>();
  for (int64_t b = 0; b < rows; ++b) {
    absl::Status s = dataset.CopyWindow(split, starts[b], seq_len + 1, data + b * (seq_len + 1));
    if (!s.ok()) return s;
  }
  return Batch{windows.narrow(1, 0, seq_len), windows.narrow(1, 1, seq_len)};
}

absl::StatusOr<BatchSampler> BatchSampler::Create(const TokenDataset& dataset, Split split,
                                                  int64_t seq_len, int64_t batch_size, int64_t seed,
                                                  int64_t rank) {
  if (absl::Status s = dataset.CheckWindow(split, seq_len); !s.ok()) return s;
  if (batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.batch_size: must be >= 1, got ", batch_size));
  }
  if (rank < 0) return absl::InvalidArgumentError(absl::StrCat("rank: must be >= 0, got ", rank));
  if (dataset.sources().size() > 1) {
    for (size_t i = 0; i < dataset.sources().size(); ++i) {
      const TokenDataset::Source& s = dataset.sources()[i];
      const int64_t size = split == Split::kTrain ? s.train_size : s.val_size;
      if (size <= seq_len) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data.sources[", i, "]: the ", SplitName(split), " split of source \"", s.name,
            "\" has ", size, " tokens, fewer than one window of model.seq_len + 1 = ", seq_len + 1));
      }
    }
  }
  return BatchSampler(dataset, split, seq_len, batch_size, seed, rank);
}

BatchSampler::BatchSampler(const TokenDataset& dataset, Split split, int64_t seq_len,
                           int64_t batch_size, int64_t seed, int64_t rank)
    : dataset_(dataset),
      split_(split),
      seq_len_(seq_len),
      batch_size_(batch_size),
      num_windows_(dataset.NumWindows(split, seq_len)),
      key_(Mix(Mix(static_cast<uint64_t>(seed) ^ 0x6a09e667f3bcc908ULL) +
               static_cast<uint64_t>(rank) * kGolden)) {
  state_.seed = seed;
  state_.rank = rank;
  const std::vector<TokenDataset::Source>& sources = dataset.sources();
  if (sources.size() <= 1) {
    segments_.push_back({0, num_windows_, UINT64_MAX});
    return;
  }
  double cumulative = 0;
  for (const TokenDataset::Source& s : sources) {
    cumulative += s.weight;
    const bool train = split == Split::kTrain;
    const double fraction = std::min(1.0, cumulative);
    segments_.push_back({train ? s.train_begin : s.val_begin,
                         (train ? s.train_size : s.val_size) - seq_len,
                         fraction >= 1.0 ? UINT64_MAX
                                         : static_cast<uint64_t>(std::ldexp(fraction, 64))});
  }
  segments_.back().below = UINT64_MAX;
}

uint64_t BatchSampler::NextWord() { return Mix(key_ + (state_.draws++) * kGolden); }

int64_t BatchSampler::NextOffset() {
  // With several sources, one word picks the source by weight.
  const Segment* segment = &segments_[0];
  if (segments_.size() > 1) {
    const uint64_t pick = NextWord();
    for (const Segment& s : segments_) {
      segment = &s;
      if (pick < s.below) break;
    }
  }
  // Lemire's multiply-shift maps one 64-bit word onto [0, n). Without the rejection step its bias
  // is below n / 2^64 (< 1e-10 for any corpus), and every offset costs a fixed number of words,
  // so draws is the same on every rank: rank 0's checkpointed state restores them all.
  const auto product =
      static_cast<unsigned __int128>(NextWord()) * static_cast<uint64_t>(segment->windows);
  return segment->begin + static_cast<int64_t>(product >> 64);
}

std::vector<int64_t> BatchSampler::NextStarts() {
  std::vector<int64_t> starts(batch_size_);
  for (int64_t& s : starts) s = NextOffset();
  ++state_.batches;
  return starts;
}

Batch BatchSampler::Next() {
  // Offsets are in range by construction, so MakeBatch cannot fail here.
  absl::StatusOr<Batch> batch = MakeBatch(dataset_, split_, NextStarts(), seq_len_);
  TORCH_CHECK(batch.ok(), "BatchSampler: ", batch.status().ToString());
  return *std::move(batch);
}

absl::Status BatchSampler::Restore(const State& state) {
  if (state.seed != state_.seed || state.rank != state_.rank) {
    return absl::FailedPreconditionError(
        absl::StrCat("sampler state was saved for seed ", state.seed, " rank ", state.rank,
                     ", this sampler is seed ", state_.seed, " rank ", state_.rank));
  }
  state_ = state;
  return absl::OkStatus();
}

}  // namespace gauntlet
