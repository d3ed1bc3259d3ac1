#ifndef GAUNTLET_COMMON_MODEL_CONFIG_H_
#define GAUNTLET_COMMON_MODEL_CONFIG_H_

// Model configuration, torch-free: the coordinator links this to validate specs and the trainer
// to build models (trainer/models/registry.h). Everything an architecture needs to be named,
// resolved from YAML, validated and costed lives in two tables here: NamedSizes() and Archs().
// docs/ARCHITECTURES.md describes every architecture and lists the places a new one touches.

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
  // Hidden width of hybrid's static MLP and of the "static_mlp" mixer, as a multiple of d_model.
  int64_t hybrid_static_mlp_ratio = 2;

  // Layer-stack archs (sqa, mixed, looped, matformer, attn_drop): the token mixer of each unique
  // layer, one of Mixers().
  std::vector<std::string> mixers;
  // "sqa" mixer: query and key/value head counts (head width stays d_model / n_heads).
  int64_t sqa_q_heads = 0;
  int64_t sqa_kv_heads = 0;
  // "sliced_attn" mixer: chunk length in tokens.
  int64_t slice_len = 0;
  // looped: the unique layers run `loops` times.
  int64_t loops = 1;
  bool loop_input_injection = false;
  bool loop_embedding = false;
  bool loop_inter_linear = false;
  // matformer: nested FFN widths as fractions of d_ff (ascending, last 1), training mode
  // ("joint" or "sample") and the per-layer granularity index Forward uses.
  std::vector<double> matformer_granularities;
  std::string matformer_train_mode;
  std::vector<int64_t> matformer_eval_granularity;
};

// One named size: the dimensions a spec starts from before its overrides.
struct NamedSize {
  std::string name;
  int64_t vocab_size;  // 0: the tokenizer's
  int64_t d_model;
  int64_t n_layers;
  int64_t n_heads;
  int64_t d_ff;
  int64_t seq_len;
  double dropout;
};
const std::vector<NamedSize>& NamedSizes();

// One architecture's torch-free half: its registry key, the defaults it derives from the spec,
// its cross-field rules and its training cost. The torch half (the factory) is the row with the
// same name in trainer/models/registry.cc; a test checks that the two tables name the same archs.
struct ArchRules {
  std::string name;
  // Fills arch-specific derived fields after the common ones (e.g. the mixer pattern). May be
  // null. Errors name YAML fields.
  absl::Status (*resolve)(const v1::ModelSpec& spec, ModelConfig& config);
  // Arch-specific rules, run after the common ones. May be null. Errors name YAML fields.
  absl::Status (*validate)(const ModelConfig& config);
  // Training FLOPs per token (forward + backward) at context seq_len: docs/PERFORMANCE.md
  // "FLOPs per token" and docs/ARCHITECTURES.md give the conventions and each formula.
  double (*training_flops_per_token)(const ModelConfig& config, int64_t seq_len);
  // Key/value values the KV cache (trainer/models/kv_cache.h) allocates per row for a sequence of
  // `context` positions, divided by context. Per-row state of fixed size (worker's conv inputs,
  // sparse_depth's counters) is not counted.
  double (*kv_cache_values_per_token)(const ModelConfig& config, int64_t context);
};
const std::vector<ArchRules>& Archs();
// The row for `arch`, or null.
const ArchRules* FindArch(const std::string& arch);

// Registry keys of every architecture, in table order.
const std::vector<std::string>& KnownArchs();
// Named sizes ("tiny", "seed", "124m", "gpt2-small").
const std::vector<std::string>& KnownSizes();
// Token mixers of the layer-stack archs ("attn", "sqa", "sliced_attn", "static_mlp", "none",
// "worker").
const std::vector<std::string>& Mixers();
// Whether `mixer` is an attention ("attn", "sqa", "sliced_attn"): what attention drop removes.
bool IsAttentionMixer(const std::string& mixer);
// Layer-stack archs with "worker" layers and no attention layer: only the workers' predictions
// read earlier tokens, so only the workers are trained (trainer/models/layer_stack.h).
bool LayerStackTrainsWorkersOnly(const ModelConfig& config);

// Applies the named size, then every field the spec sets, then the arch's defaults, then
// validates. Errors are InvalidArgument naming the field as the YAML spells it, e.g.
// "model.n_heads: 3 does not divide model.d_model 256".
absl::StatusOr<ModelConfig> ResolveModelConfig(const v1::ModelSpec& spec, int64_t vocab_size);

// The rules ResolveModelConfig enforces (common, then the arch's), for configs built in code
// (CreateModel calls it too, so a model is never constructed from an inconsistent config).
absl::Status ValidateModelConfig(const ModelConfig& config);

// Training FLOPs per token of `config` at context seq_len (its arch's row). 0 for an unknown arch.
double TrainingFlopsPerToken(const ModelConfig& config, int64_t seq_len);

// KV-cache bytes per token of `config` decoding sequences of `context` positions with
// `bytes_per_value`-byte keys and values (4: float32, 2: bf16): its arch's row. 0 for an unknown
// arch or context <= 0.
double KvCacheBytesPerToken(const ModelConfig& config, int64_t context, int64_t bytes_per_value);

// FLOPs of one training step per token (forward + backward = 3x forward, 2 FLOPs per MAC) for a
// matmul with `params` weights applied to every token.
inline double TrainingMatmulFlops(double params) { return 6.0 * params; }
// Attention scores and context for one token attending to `keys` keys at total query width
// `width` (heads x head width), forward + backward, counting the full key range as the PaLM MFU
// convention does.
inline double TrainingAttentionFlops(double width, double keys) { return 12.0 * width * keys; }

// Worker positions of a window of `seq_len` tokens in phase `phase` (see model.h): t with
// (t + phase) % k == k - 1, plus the last position, ascending. Torch-free so the data and eval
// code can reason about them without a model.
std::vector<int64_t> WorkerPositions(int64_t seq_len, int64_t interval, int64_t phase);

// sparse_depth: the slot bound C of a window of seq_len tokens (trainer/models/sparse_depth.h).
inline constexpr double kSparseSlotFactor = 1.5;
int64_t SparseDepthSlots(const ModelConfig& config, int64_t seq_len);

// matformer: the nested FFN hidden widths round(fraction * d_ff), ascending.
std::vector<int64_t> MatFormerWidths(const ModelConfig& config);

}  // namespace gauntlet

#endif  // GAUNTLET_COMMON_MODEL_CONFIG_H_
