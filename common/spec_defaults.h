#ifndef GAUNTLET_COMMON_SPEC_DEFAULTS_H_
#define GAUNTLET_COMMON_SPEC_DEFAULTS_H_

// Every spec default, in one place (spec_defaults.cc lists them with their reasons). Defaults only
// fill fields the user left unset; they never overwrite.

#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

// Fills a resolved trial spec (base + variant overrides + grid values already merged):
//   data.tokenizer "char", data.val_fraction 0.1,
//   model.size "seed" (model.arch has no default: it is required),
//   train.batch_size 16, grad_accum_steps 1, optimizer {adamw, lr 3e-4, betas (0.9, 0.999),
//   eps 1e-8, weight_decay 0.01}, schedule {constant, warmup 0, min_lr_ratio 0.1},
//   grad_clip 1.0, precision "auto", log_every 10, bucket_mib 25,
//   eval {protocol fair, every_steps 100, every_seconds 0, max_tokens 0,
//         batch_size = train.batch_size, seed_batches 20, seed_final_batches 50},
//   resources {gpus_per_trial 1, max_nodes 1} (device stays "" = decided by the scheduler),
//   checkpoint {every_steps 0, keep_last 2}.
// Model dimensions are not filled: they come from the named size via ResolveModelConfig
// (common/model_config.h), which needs the corpus vocabulary.
void ApplyTrialDefaults(v1::TrialSpec* spec);

// Experiment-level defaults: seeds [0], max_restarts 1, baseline = the first variant's name.
// Does not touch base or overrides (see ApplyTrialDefaults).
void ApplyExperimentDefaults(v1::ExperimentSpec* spec);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_SPEC_DEFAULTS_H_
