#ifndef GAUNTLET_TRAINER_EVAL_EVAL_OPTIONS_H_
#define GAUNTLET_TRAINER_EVAL_EVAL_OPTIONS_H_

// How to evaluate, resolved from v1::EvalSpec. Torch-free (and .pb.h-free in the header, since
// LibTorch's bundled protobuf headers clash with the system's in torch translation units).

#include <cstdint>

#include "absl/status/statusor.h"

namespace gauntlet {
namespace v1 {
class EvalSpec;
}  // namespace v1

struct EvalOptions {
  enum class Protocol { kFair, kSeed };
  Protocol protocol = Protocol::kFair;
  int64_t max_tokens = 0;     // fair: cap on scored positions; 0 = the whole val split
  int64_t batch_size = 16;    // windows per forward pass (and per seed-protocol batch)
  int64_t seed_batches = 20;  // seed: batches scored

  // `default_batch_size` is train.batch_size; `final_eval` picks seed_final_batches (default 50)
  // over seed_batches (default 20). InvalidArgument naming eval.protocol, eval.max_tokens,
  // eval.batch_size, eval.seed_batches or eval.seed_final_batches for bad values.
  static absl::StatusOr<EvalOptions> FromSpec(const v1::EvalSpec& spec, int64_t default_batch_size,
                                              bool final_eval);
};

const char* ProtocolName(EvalOptions::Protocol protocol);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_EVAL_EVAL_OPTIONS_H_
