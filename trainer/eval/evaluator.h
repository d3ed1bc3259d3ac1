#ifndef GAUNTLET_TRAINER_EVAL_EVALUATOR_H_
#define GAUNTLET_TRAINER_EVAL_EVALUATOR_H_

// Validation loss, measured the same way for every architecture.
//
// "fair" (default): mean cross-entropy over ALL positions of fixed, non-overlapping val windows
// [i*T, i*T + T] (targets shifted by one), i = 0 .. W-1, W = min(floor((val - 1) / T),
// max(1, max_tokens / T)) (max_tokens 0: the whole val split). An arch with NumEvalPhases() = k
// runs k passes; each position takes its logits from the lowest phase whose TrainPositions marks
// it (the worker arch marks the last position in every phase; every other position is marked
// by exactly one phase), so every position is scored exactly once; a position no phase marks is
// an error. The native loss (phase 0's TrainPositions only: what the arch trains on) comes from
// the same passes.
//
// "seed": the WorkerTransformer repository's protocol, to reproduce its table: batches of
// batch_size stride-1 overlapping windows starting at val offsets 0, 1, 2, ...; each batch's mean
// CE over the arch's phase-0 TrainPositions; the loss is the mean of the first seed_batches
// (final: seed_final_batches) per-batch means.
//
// Data parallel: rank r of world_size scores windows (fair) or batches (seed) with index
// i % world_size == r and returns sums; the trainer all-reduces the sums and calls
// FinishEvalResult.

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/data/token_dataset.h"
#include "trainer/eval/eval_options.h"
#include "trainer/models/model.h"

namespace gauntlet {

struct EvalResult {
  // Sums to all-reduce across ranks. Fair: loss_sum is the summed per-position CE (nats) and
  // count the positions; seed: loss_sum is the summed per-batch mean CE and count the batches.
  double loss_sum = 0;
  double count = 0;
  // The arch's native positions (phase 0 TrainPositions). Seed protocol: equal to the above.
  double native_loss_sum = 0;
  double native_count = 0;
  // Positions whose CE entered loss_sum (fair: == count; seed: batches x native positions).
  double tokens_scored = 0;

  // Filled by FinishEvalResult (Evaluate calls it on the local sums).
  double val_loss = 0;         // loss_sum / count, nats
  double val_loss_native = 0;  // native_loss_sum / native_count
  double bits_per_token = 0;   // val_loss / ln 2
  double seconds = 0;          // wall time of Evaluate on this rank
};

// Recomputes the means from the sums, e.g. after the trainer all-reduced loss_sum, count,
// native_loss_sum, native_count and tokens_scored.
void FinishEvalResult(EvalResult& result);

// Scores `model` on the val split of `dataset` on `device`. The model is put in eval mode under
// NoGradGuard and returned to its previous mode afterwards (also when an exception escapes).
// Errors: InvalidArgument when the val split is shorter than one window (names data.path,
// model.seq_len) or rank/world_size are inconsistent; Internal when the arch's eval phases do not
// cover every position exactly once. LibTorch exceptions propagate (the trainer maps them).
absl::StatusOr<EvalResult> Evaluate(LanguageModelImpl& model, const TokenDataset& dataset,
                                    const EvalOptions& options, const torch::Device& device,
                                    int rank = 0, int world_size = 1);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_EVAL_EVALUATOR_H_
