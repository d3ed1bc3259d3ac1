#ifndef GAUNTLET_TRAINER_MODELS_MODEL_H_
#define GAUNTLET_TRAINER_MODELS_MODEL_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "trainer/models/kv_cache.h"

namespace gauntlet {

// What one forward pass produced.
struct ModelOutput {
  torch::Tensor logits;  // (B, T, V), float32 or autocast dtype; only from Forward
  // Only from ForwardHidden: the final-norm hidden states (B, P, d) at the P positions training
  // scores, their positions (P,) int64 on the model's device (undefined: all T, in order), and
  // the LM head's weight (V, d), so the loss can run the head fused with cross-entropy there.
  torch::Tensor hidden;
  torch::Tensor hidden_positions;
  torch::Tensor head_weight;
  // Mask (T,) of bool: the positions this arch trains on (all true except for `worker`).
  torch::Tensor train_positions;
  // Extra loss terms the arch adds to the LM loss (e.g. the router's auxiliary loss); 0-dim.
  torch::Tensor aux_loss;
  // Scalars for reporting, e.g. {"layers_per_token": 2.5}: detached 0-dim float32 tensors on the
  // model's device, so a forward pass never waits for the device; read them (.item(), a sync)
  // only when reporting.
  std::map<std::string, torch::Tensor> stats;
};

// Every architecture implements this. Models are single-device; parallelism lives outside.
// Held as std::shared_ptr<LanguageModelImpl> (see registry.h).
class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(ModelConfig config) : config_(std::move(config)) {}
  ~LanguageModelImpl() override = default;

  // Logits at every position. tokens: (B, T) int64 with T <= seq_len. `phase` only matters for
  // archs whose computation depends on position classes (worker: position t is a worker iff
  // (t + phase) % k == k - 1, plus the last position); others ignore it.
  ModelOutput Forward(const torch::Tensor& tokens, int64_t phase = 0) {
    return Run(tokens, phase, Head::kLogits);
  }
  // The training pass (phase 0): no logits; `hidden`, `hidden_positions` and `head_weight`
  // instead, covering exactly the positions train_positions marks (TrainingLoss scores them).
  ModelOutput ForwardHidden(const torch::Tensor& tokens) {
    return Run(tokens, 0, Head::kHidden);
  }

  // Number of forward passes with phases 0..n-1 that together give a trained prediction at every
  // position (worker: k; everything else: 1). The fair evaluator uses it.
  virtual int64_t NumEvalPhases() const { return 1; }

  // Which positions of a (T,)-window phase `phase` trains (produces trained logits for).
  virtual torch::Tensor TrainPositions(int64_t seq_len, int64_t phase) const;

  // Training FLOPs per token (forward + backward, 6N-style plus attention) at context seq_len,
  // used for MFU: the arch's row in common/model_config.h (torch-free, so it is the one place).
  // Counts only work the arch really does (e.g. worker's reduced query rows).
  double TrainingFlopsPerToken(int64_t seq_len) const {
    return ::gauntlet::TrainingFlopsPerToken(config_, seq_len);
  }

  // Named submodels of this model that evaluation scores besides the configured one, each
  // reported as its own row (MatFormer: every FFN granularity, and its Mix'n'Match choice). Most
  // archs have none.
  virtual std::vector<std::string> SubmodelNames() const { return {}; }
  // Makes Forward run submodel `name` (one of SubmodelNames()), or the configured model for "".
  virtual void SelectSubmodel(const std::string& name) {}

  // Post-hoc attention-drop importance of every layer on calibration tokens (B, T):
  // S_i = 1 - mean over tokens of cos(x, x + Attn_i(RMSNorm_1(x))), x the stream entering layer
  // i's attention (averaged over loops), NaN where layer i has no attention. Low S: the
  // sub-layer barely changes the stream, so drop it first (docs/ARCHITECTURES.md "attn_drop").
  // Empty when the arch does not expose its sub-layers (only the layer-stack archs do).
  virtual std::vector<double> AttentionImportance(const torch::Tensor& tokens) { return {}; }
  // Removes the attention sub-layer (and its norm) of each listed layer, which must have one:
  // from then on the layer is y = x + FFN(RMSNorm_2(x)). The removed parameters stay registered
  // (checkpoints keep their shape) but get no gradient. Only archs with AttentionImportance.
  virtual void DropAttention(const std::vector<int64_t>& layers) {
    TORCH_CHECK(false, "arch ", config_.arch, " cannot drop attention layers");
  }

  // Autoregressive decoding with a KV cache (trainer/models/kv_cache.h). Both run without
  // gradients and need eval mode (no dropout). Decoding a sequence gives, at every position t,
  // the logits Forward(tokens[:, :t+1], cache.phase) has at t (sparse_depth: those of a window of
  // cache.max_len tokens, whose slot bound its routing uses; see sparse_depth.h).
  //
  // Whether this arch implements the cache.
  virtual bool SupportsKvCache() const { return false; }
  // An empty cache for `batch` rows of at most max_len (<= seq_len) positions.
  KvCache NewKvCache(int64_t batch, int64_t max_len, int64_t phase = 0) const;
  // Appends tokens (B, n), n >= 1, to the cache (a prompt, or one more chunk of it) and returns
  // the logits (B, V) at the last of them, in the parameters' dtype (float32 unless cast).
  torch::Tensor Prefill(KvCache& cache, const torch::Tensor& tokens);
  // Appends one token per row, (B,) int64, and returns the logits (B, V) at it.
  torch::Tensor DecodeStep(KvCache& cache, const torch::Tensor& token);
  // DecodeStep with no shape or host value depending on the position, so a CUDA graph can
  // capture it once and replay it for every later token: attention reads all max_len slots under
  // a mask, and RoPE and the cache write use cache.position (set from cache.length on the first
  // call), which the step advances on the device. A replay does not run this host code, so it
  // leaves cache.length behind: a caller that replays sets cache.length itself before calling
  // Prefill or DecodeStep again. Needs SupportsStaticDecode() and a prefilled cache.
  torch::Tensor DecodeStepStatic(KvCache& cache, const torch::Tensor& token);
  // Whether DecodeStepStatic is implemented (archs whose step has no position-dependent
  // control flow: not worker, whose token kind depends on the position, nor sparse_depth).
  virtual bool SupportsStaticDecode() const { return false; }

  int64_t NumParameters() const;
  const ModelConfig& config() const { return config_; }

 protected:
  enum class Head { kLogits, kHidden };
  // The architecture's forward pass; ends with FinishHead.
  virtual ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head head) = 0;
  // Appends tokens (B, n) at positions cache.length.. and returns the logits (B, V) at the last;
  // Prefill and DecodeStep check the arguments and advance cache.length after it.
  virtual torch::Tensor ExtendCache(KvCache& cache, const torch::Tensor& tokens);
  // Applies the LM head to `normed` (final-norm hidden states, (B, T, d)) for kLogits, or stores
  // them with the head's weight for kHidden.
  static void FinishHead(ModelOutput& out, const torch::Tensor& normed,
                         torch::nn::Linear head_layer, Head head);

  ModelConfig config_;
};

// The training loss of a ForwardHidden output: mean cross-entropy over its rows (the trained
// positions of every sequence), with the head applied chunk by chunk and fused with the
// cross-entropy so logits never exist for every position at once. Equal to
// MaskedCrossEntropy(Forward(tokens).logits, targets, train_positions). targets: (B, T) int64.
torch::Tensor TrainingLoss(const ModelOutput& out, const torch::Tensor& targets);

// Cross-entropy averaged over the positions where `mask` (T,) is true; logits (B,T,V) are
// upcast to float32. Targets (B,T) int64.
torch::Tensor MaskedCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                 const torch::Tensor& mask);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_MODEL_H_
