#ifndef GAUNTLET_TRAINER_MODELS_LAYER_STACK_H_
#define GAUNTLET_TRAINER_MODELS_LAYER_STACK_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "trainer/models/mixer_block.h"
#include "trainer/models/trunk.h"
#include "trainer/models/worker.h"

namespace gauntlet {

// archs "sqa", "mixed", "looped", "matformer", "attn_drop" (docs/ARCHITECTURES.md): the trunk
// with one MixerBlock per entry of config.mixers, which is how those archs differ (their rows
// in common/model_config.cc resolve it), plus:
//  - looping: the blocks run config.loops times (ABAB). Before loop r > 0 the stream gets
//    x <- x + L_r x (inter_loop.{r-1}, bias-free d x d, non-shared: SReT) and x <- x + E[tokens]
//    (input injection); before every loop x <- x + loop_embedding[r] (learned, N(0, 0.02^2)).
//    Each is elementwise per token, so the loop adds no token mixing.
//  - MatFormer: every FFN is nested (config.matformer_granularities). Forward runs each layer at
//    its eval granularity (Mix'n'Match; SetEvalGranularity). The training pass, ForwardHidden,
//    runs in mode "joint" every granularity (all layers at that width) and returns their final
//    hidden states side by side with hidden_positions 0..T-1 repeated, so TrainingLoss is the
//    mean of the granularities' LM losses; in mode "sample" one granularity drawn uniformly from
//    the device's torch generator, run as a mask over the full-width FFN (no shape depends on
//    the draw, so the step can be captured in a CUDA graph and each replay draws again).
//  - worker layers (mixer "worker", InplaceWorkerTransformer's layer): the input gets the
//    worker-type vector at the workers of the pass's phase, as the worker arch. When no layer is
//    an attention (LayerStackTrainsWorkersOnly), only the workers' predictions read earlier
//    tokens, so only they are trained (train_positions, hidden at the workers, NumEvalPhases k);
//    otherwise every position is. No KV-cache decoding with worker layers.
// Parameters: the trunk's, blocks.{i}.* (MixerBlock), worker_type (d) with worker layers,
// loop_embedding (loops, d) and inter_loop.{r}.weight when enabled.
class LayerStackTransformer : public TrunkTransformer {
 public:
  explicit LayerStackTransformer(ModelConfig config);

  // matformer: granularity index per layer (one entry: every layer) for Forward. Replaces
  // config.matformer_eval_granularity; the evaluator scores whatever is set.
  void SetEvalGranularity(const std::vector<int64_t>& per_layer);
  // matformer: "ffn=<fraction>" for every granularity (all layers at it), then the configured
  // eval granularity as "ffn=<f_0>,<f_1>,..." when it differs across layers (Mix'n'Match).
  std::vector<std::string> SubmodelNames() const override;
  void SelectSubmodel(const std::string& name) override;

  // Scores every layer's attention (any attention mixer) on the stream the model really feeds
  // it, in eval mode without gradients; see LanguageModelImpl.
  std::vector<double> AttentionImportance(const torch::Tensor& tokens) override;
  void DropAttention(const std::vector<int64_t>& layers) override;

  // Worker layers: see the class comment.
  int64_t NumEvalPhases() const override;
  torch::Tensor TrainPositions(int64_t seq_len, int64_t phase) const override;

  // KV-cache decoding: one cache entry per (loop r, layer i), index r * n_layers + i, each
  // allocated only for attention mixers; layers run at eval_widths() as in Forward. Not with
  // worker layers.
  bool SupportsKvCache() const override { return !has_workers_; }
  bool SupportsStaticDecode() const override { return !has_workers_; }

  // FFN hidden width per layer that Forward uses.
  const std::vector<int64_t>& eval_widths() const { return eval_widths_; }

 protected:
  ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head head) override;
  torch::Tensor ExtendCache(KvCache& cache, const torch::Tensor& tokens) override;

 private:
  // The stream entering loop `loop`: after the first, plus the inter-loop linear of the stream and
  // the injected embedding e (when configured); plus the loop's embedding (when configured).
  torch::Tensor EnterLoop(int64_t loop, const torch::Tensor& x, const torch::Tensor& e);
  // embed(tokens), plus, with worker layers, the worker-type vector at phase's workers (whose
  // layout and tables go to `workers`).
  torch::Tensor Embed(const torch::Tensor& tokens, int64_t phase, const torch::Tensor& cos,
                      const torch::Tensor& sin, WorkerInputs& workers);
  // Layer i (a worker layer through ForwardWorker).
  torch::Tensor ApplyLayer(size_t i, const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin, int64_t width, const torch::Tensor& ffn_units,
                           const WorkerInputs& workers);
  // Every loop of the blocks on the embedded tokens e, layer i at FFN width widths[i], or every
  // layer under the FFN hidden-unit mask ffn_units (d_ff,) when it is defined.
  torch::Tensor Pass(const torch::Tensor& e, const torch::Tensor& cos, const torch::Tensor& sin,
                     const std::vector<int64_t>& widths, const torch::Tensor& ffn_units,
                     const WorkerInputs& workers);
  // Fills `out` from the final streams (B, T, d) of one pass, or of one per granularity (MatFormer
  // joint: side by side, hidden_positions repeated); only at the workers when workers_only_.
  void FinishStack(ModelOutput& out, const std::vector<torch::Tensor>& finals, Head head,
                   const WorkerInputs& workers);
  // matformer: (granularities, d_ff) float32 on `device`, row g 1 on granularity g's units.
  const torch::Tensor& GranularityUnits(const torch::Device& device);

  std::vector<MixerBlock> layers_;
  torch::Tensor loop_embedding_;
  torch::nn::ModuleList inter_loop_{nullptr};
  std::vector<int64_t> granularity_widths_;  // matformer: hidden width per granularity
  std::vector<int64_t> eval_widths_;
  torch::Tensor granularity_units_;  // cached by GranularityUnits
  bool has_workers_;   // some mixer is "worker"
  bool workers_only_;  // LayerStackTrainsWorkersOnly
  torch::Tensor worker_type_;
  WorkerLayouts worker_layouts_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_LAYER_STACK_H_
