#ifndef GAUNTLET_TRAINER_MODELS_MODEL_CONFIG_H_
#define GAUNTLET_TRAINER_MODELS_MODEL_CONFIG_H_

// Torch-free: the coordinator links this to validate specs without LibTorch.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace gauntlet {
namespace v1 {
// Forward-declared rather than included: LibTorch's include directory ships its own, older
// google/protobuf headers that shadow the system ones, so a translation unit that includes both
// torch and a .pb.h does not compile. Keeping spec.pb.h out of this header keeps model.h (which
// every torch TU includes) free of protobuf. Include "gauntlet/v1/spec.pb.h" to call Resolve.
class ModelSpec;
}  // namespace v1

// Fully resolved model hyper-parameters (named size + YAML overrides already applied).
struct ModelConfig {
  std::string arch;  // registry key
  std::string size;  // named size it started from
  // Embedding rows and head width: the tokenizer's vocabulary, or a larger padded one.
  int64_t vocab_size = 65;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t d_ff = 1024;
  int64_t seq_len = 1024;
  double dropout = 0.1;
  // worker
  int64_t worker_interval = 4;
  int64_t worker_conv_kernel = 3;
  // sparse_depth
  double sparse_capacity = 0.5;
  int64_t sparse_dense_layers = 1;
  double sparse_aux_loss_weight = 0.01;
  // hybrid: one entry per layer, true = causal attention, false = static per-token MLP
  std::vector<bool> hybrid_attention_layers;
  int64_t hybrid_static_mlp_ratio = 2;
};

// Registry keys of every architecture ("standard", "worker", "sparse_depth", "hybrid").
const std::vector<std::string>& KnownArchs();
// Named sizes ("tiny", "seed", "124m", "gpt2-small").
const std::vector<std::string>& KnownSizes();

// Applies the named size, then every field the spec sets, then validates. Errors are
// InvalidArgument naming the field as the YAML spells it, e.g. "model.n_heads: 3 does not divide
// model.d_model 256".
absl::StatusOr<ModelConfig> ResolveModelConfig(const v1::ModelSpec& spec, int64_t vocab_size);

// The cross-field rules ResolveModelConfig enforces, for configs built in code (CreateModel calls
// it too, so a model is never constructed from an inconsistent config). Errors name YAML fields.
absl::Status ValidateModelConfig(const ModelConfig& config);

// Worker positions of a window of `seq_len` tokens in phase `phase` (see model.h): t with
// (t + phase) % k == k - 1, plus the last position, ascending. Torch-free so the data and eval
// code can reason about them without a model.
std::vector<int64_t> WorkerPositions(int64_t seq_len, int64_t interval, int64_t phase);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_MODEL_CONFIG_H_
