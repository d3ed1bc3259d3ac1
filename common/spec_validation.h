#ifndef GAUNTLET_COMMON_SPEC_VALIDATION_H_
#define GAUNTLET_COMMON_SPEC_VALIDATION_H_

// Cross-field rules for specs that already parsed and have their defaults applied.
// Errors are InvalidArgument listing EVERY error found, one per line, each starting with the
// field path as the YAML spells it, "path: detail", e.g. "train.optimizer.lr: must be > 0 (got
// -1)"; at most kMaxSpecErrors lines, then "... and more errors (...)". They carry no line/column:
// spec_yaml.h adds those, line by line, from the parser's SourceMap.

#include <string>

#include "absl/status/status.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

// Vocabulary upper bound used to check model dimensions before the corpus is tokenized (the byte
// tokenizer's 256 bounds the char tokenizer too for the corpora we use).
inline constexpr int kValidationVocabSize = 256;

// Errors listed per spec at most (the message stays small whatever the spec).
inline constexpr int kMaxSpecErrors = 20;

// Validates one resolved trial spec (defaults applied). Paths in errors are `path_prefix` + field.
absl::Status ValidateTrialSpec(const v1::TrialSpec& spec, const std::string& path_prefix = "");

// Validates an experiment (experiment defaults applied): names, baseline, seeds, sweep axes, and
// every variant x grid point resolved (common/trial_expansion.h) and checked by ValidateTrialSpec.
// Errors in a resolved trial are reported under the path that set the bad value when it is
// knowable from the spec alone: "sweep.<axis>[j]" for a grid value, otherwise
// "variants[i].<field>" (spec_yaml.h maps that to the variant's or the base's line).
absl::Status ValidateExperimentSpec(const v1::ExperimentSpec& spec);

// Splits "path: detail" into its parts; returns false when the message does not start with a
// field path (letters, digits, '_', '.', '[', ']').
bool SplitFieldError(const std::string& message, std::string* path, std::string* detail);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_SPEC_VALIDATION_H_
