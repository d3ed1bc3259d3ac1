#include "trainer/eval/eval_options.h"

#include "absl/strings/str_cat.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {

const char* ProtocolName(EvalOptions::Protocol protocol) {
  return protocol == EvalOptions::Protocol::kFair ? "fair" : "seed";
}

absl::StatusOr<EvalOptions> EvalOptions::FromSpec(const v1::EvalSpec& spec,
                                                  int64_t default_batch_size, bool final_eval) {
  EvalOptions options;
  if (spec.protocol().empty() || spec.protocol() == "fair") {
    options.protocol = Protocol::kFair;
  } else if (spec.protocol() == "seed") {
    options.protocol = Protocol::kSeed;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("eval.protocol: must be \"fair\" or \"seed\", got \"", spec.protocol(), "\""));
  }
  if (spec.max_tokens() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval.max_tokens: must be >= 0, got ", spec.max_tokens()));
  }
  options.max_tokens = spec.max_tokens();
  options.batch_size = spec.has_batch_size() ? spec.batch_size() : default_batch_size;
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(spec.has_batch_size() ? "eval.batch_size" : "train.batch_size",
                     ": must be >= 1, got ", options.batch_size));
  }
  if (final_eval) {
    options.seed_batches = spec.has_seed_final_batches() ? spec.seed_final_batches() : 50;
  } else {
    options.seed_batches = spec.has_seed_batches() ? spec.seed_batches() : 20;
  }
  if (options.seed_batches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(final_eval ? "eval.seed_final_batches" : "eval.seed_batches",
                     ": must be >= 1, got ", options.seed_batches));
  }
  return options;
}

}  // namespace gauntlet
