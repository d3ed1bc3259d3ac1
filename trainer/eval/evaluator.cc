#include "trainer/eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "trainer/data/batch_sampler.h"

namespace gauntlet {
namespace {

// Puts the model in eval mode for a scope and restores its previous mode, also on exceptions.
class EvalModeScope {
 public:
  explicit EvalModeScope(LanguageModelImpl& model)
      : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~EvalModeScope() { model_.train(was_training_); }
  EvalModeScope(const EvalModeScope&) = delete;
  EvalModeScope& operator=(const EvalModeScope&) = delete;

 private:
  LanguageModelImpl& model_;
  bool was_training_;
};

// Per-position cross-entropy (B, T) in float64, logits upcast first.
torch::Tensor PositionLosses(const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t batch = logits.size(0), seq_len = logits.size(1), vocab = logits.size(2);
  return torch::nn::functional::cross_entropy(
             logits.reshape({batch * seq_len, vocab}).to(torch::kFloat32), targets.reshape({-1}),
             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
      .view({batch, seq_len})
      .to(torch::kFloat64);
}

// For each phase, the (T,) float64 mask of the positions it owns: the positions its
// TrainPositions marks and no lower phase marks. Internal error when a position is unmarked.
absl::StatusOr<std::vector<torch::Tensor>> OwnedPositions(const LanguageModelImpl& model,
                                                          int64_t seq_len) {
  const int64_t phases = model.NumEvalPhases();
  if (phases < 1) {
    return absl::InternalError(absl::StrCat("arch ", model.config().arch, ": NumEvalPhases() is ",
                                            phases, ", must be >= 1"));
  }
  torch::Tensor covered = torch::zeros({seq_len}, torch::kBool);
  std::vector<torch::Tensor> owned;
  for (int64_t p = 0; p < phases; ++p) {
    const torch::Tensor marks = model.TrainPositions(seq_len, p).to(torch::kCPU, torch::kBool);
    if (marks.dim() != 1 || marks.size(0) != seq_len) {
      return absl::InternalError(absl::StrCat("arch ", model.config().arch, ": TrainPositions(",
                                              seq_len, ", ", p, ") must be (", seq_len, ",)"));
    }
    owned.push_back((marks & ~covered).to(torch::kFloat64));
    covered |= marks;
  }
  if (!covered.all().item<bool>()) {
    const int64_t first = torch::nonzero(~covered)[0][0].item<int64_t>();
    return absl::InternalError(absl::StrCat("arch ", model.config().arch, ": eval phases 0..",
                                            phases - 1, " leave position ", first, " of ", seq_len,
                                            " without trained logits"));
  }
  return owned;
}

}  // namespace

void FinishEvalResult(EvalResult& result) {
  result.val_loss = result.count > 0 ? result.loss_sum / result.count : 0.0;
  result.val_loss_native =
      result.native_count > 0 ? result.native_loss_sum / result.native_count : 0.0;
  result.bits_per_token = result.val_loss / std::log(2.0);
}

absl::StatusOr<EvalResult> Evaluate(LanguageModelImpl& model, const TokenDataset& dataset,
                                    const EvalOptions& options, const torch::Device& device,
                                    int rank, int world_size) {
  const auto start_time = std::chrono::steady_clock::now();
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("evaluation rank ", rank, " is outside world_size ", world_size));
  }
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval.batch_size: must be >= 1, got ", options.batch_size));
  }
  const int64_t seq_len = model.config().seq_len;
  if (absl::Status s = dataset.CheckWindow(Split::kVal, seq_len); !s.ok()) return s;
  absl::StatusOr<std::vector<torch::Tensor>> owned = OwnedPositions(model, seq_len);
  if (!owned.ok()) return owned.status();
  const torch::Tensor native_mask = model.TrainPositions(seq_len, 0).to(torch::kCPU, torch::kBool);
  const double native_per_row = native_mask.sum().item<double>();

  EvalModeScope eval_mode(model);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> masks;
  for (const torch::Tensor& m : *owned) masks.push_back(m.to(device));
  const torch::Tensor native_weights = native_mask.to(device, torch::kFloat64);

  // Sums stay on the device until the end: one host sync per evaluation, not per batch.
  const auto options64 = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  torch::Tensor loss_sum = torch::zeros({}, options64);
  torch::Tensor native_sum = torch::zeros({}, options64);
  EvalResult result;

  // Runs one batch of windows.
  const auto score = [&](const std::vector<int64_t>& starts) -> absl::Status {
    absl::StatusOr<Batch> batch = MakeBatch(dataset, Split::kVal, starts, seq_len);
    if (!batch.ok()) return batch.status();
    const torch::Tensor inputs = batch->inputs.to(device);
    const torch::Tensor targets = batch->targets.to(device);
    const double rows = static_cast<double>(starts.size());
    if (options.protocol == EvalOptions::Protocol::kSeed) {
      const torch::Tensor losses = PositionLosses(model.Forward(inputs, 0).logits, targets);
      // The reference's per-batch mean over the arch's native positions.
      const torch::Tensor batch_mean = (losses * native_weights).sum() / (native_per_row * rows);
      loss_sum += batch_mean;
      native_sum += batch_mean;
      result.count += 1;
      result.native_count += 1;
      result.tokens_scored += native_per_row * rows;
      return absl::OkStatus();
    }
    for (int64_t p = 0; p < static_cast<int64_t>(masks.size()); ++p) {
      const torch::Tensor losses = PositionLosses(model.Forward(inputs, p).logits, targets);
      loss_sum += (losses * masks[p]).sum();
      if (p == 0) native_sum += (losses * native_weights).sum();
    }
    result.count += rows * seq_len;
    result.native_count += rows * native_per_row;
    result.tokens_scored += rows * seq_len;
    return absl::OkStatus();
  };

  // Window (fair) or batch (seed) indices this rank scores: i % world_size == rank.
  std::vector<int64_t> starts;
  if (options.protocol == EvalOptions::Protocol::kFair) {
    int64_t windows = (dataset.val_size() - 1) / seq_len;
    if (options.max_tokens > 0) {
      windows = std::min(windows, std::max<int64_t>(1, options.max_tokens / seq_len));
    }
    for (int64_t i = rank; i < windows; i += world_size) {
      starts.push_back(i * seq_len);
      if (static_cast<int64_t>(starts.size()) == options.batch_size) {
        if (absl::Status s = score(starts); !s.ok()) return s;
        starts.clear();
      }
    }
    if (!starts.empty()) {
      if (absl::Status s = score(starts); !s.ok()) return s;
    }
  } else {
    // Like the reference's unshuffled DataLoader over stride-1 windows: batch j holds windows
    // j*B .. j*B+B-1 (the last one shorter if the split runs out).
    const int64_t available = dataset.NumWindows(Split::kVal, seq_len);
    for (int64_t j = rank; j < options.seed_batches && j * options.batch_size < available;
         j += world_size) {
      starts.clear();
      for (int64_t w = j * options.batch_size;
           w < std::min(available, (j + 1) * options.batch_size); ++w) {
        starts.push_back(w);
      }
      if (absl::Status s = score(starts); !s.ok()) return s;
    }
  }

  result.loss_sum = loss_sum.item<double>();
  result.native_loss_sum = native_sum.item<double>();
  FinishEvalResult(result);
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
  return result;
}

}  // namespace gauntlet
