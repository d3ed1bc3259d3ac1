#ifndef GAUNTLET_TRAINER_MODELS_WORKER_H_
#define GAUNTLET_TRAINER_MODELS_WORKER_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <utility>

#include "trainer/models/layers.h"
#include "trainer/models/model.h"
#include "trainer/models/nested_ffn.h"
#include "common/model_config.h"

namespace gauntlet {

// Where the workers of one (T, phase) window are, kept on the model's device so a forward pass
// does no host work and no sync. When the workers form a regular grid (first, first + stride, ...,
// T - 1; always so in training at T = seq_len with phase 0 and T a multiple of k) they are read
// and written with strided views; otherwise (the extra last position of other phases) with
// index_select / index_copy.
struct WorkerLayout {
  torch::Tensor workers;    // (T_w,) int64, ascending
  torch::Tensor is_worker;  // (T,) bool
  torch::Tensor indicator;  // (T, 1) float32: 1 at workers, for the worker-type embedding
  int64_t first = 0;
  int64_t stride = 0;  // 0: not a regular grid
  // (T_w, T) additive attention bias per compute dtype: 0 where key j <= the worker's position,
  // -inf after. Additive and in the query's dtype, SDPA's memory-efficient kernel takes it as is
  // (a bool mask would be converted on every call).
  std::map<torch::ScalarType, torch::Tensor> bias;

  torch::Tensor Gather(const torch::Tensor& x) const;  // (B, T, ...) -> (B, T_w, ...)
  // x with its worker rows replaced by x_w (cast to x's dtype).
  torch::Tensor Scatter(const torch::Tensor& x, const torch::Tensor& x_w) const;
};

// The workers of a (seq_len, phase) window for interval k (WorkerPositions in model_config.h),
// built on the host and moved to `device`: once per window, never inside a timed forward.
WorkerLayout BuildWorkerLayout(int64_t seq_len, int64_t interval, int64_t phase,
                               const torch::Device& device);

// What a worker layer needs besides its input, for one forward pass: the layout, its attention
// bias in the compute dtype, and the full and worker RoPE tables.
struct WorkerInputs {
  const WorkerLayout* layout = nullptr;
  torch::Tensor bias, cos, sin, cos_w, sin_w;
};

// Layouts per (T, phase), rebuilt when the device changes, and the inputs of a pass over them.
class WorkerLayouts {
 public:
  explicit WorkerLayouts(int64_t interval) : interval_(interval) {}
  WorkerLayout& Get(int64_t seq_len, int64_t phase, const torch::Device& device);
  // The inputs of a pass over tokens of length seq_len at `phase` with RoPE tables cos/sin
  // (T, d_h) in the compute dtype `dtype`.
  WorkerInputs Inputs(int64_t seq_len, int64_t phase, const torch::Device& device,
                      torch::ScalarType dtype, const torch::Tensor& cos, const torch::Tensor& sin);

 private:
  int64_t interval_;
  std::map<std::pair<int64_t, int64_t>, WorkerLayout> layouts_;
};

// One InplaceWorkerTransformer layer (docs/ARCHITECTURES.md). All positions run the causal
// depthwise conv mixer, RMSNorm_1 and the K/V projection (RoPE on K); only worker positions run
// Q (RoPE at their own positions), the gate, attention over keys j <= t, the output projection and
// the FFN, and only their residual stream is updated. The conv output never enters the residual.
// The FFN is a nested one (MatFormer's, full width unless a width or unit mask is given: the
// layer-stack archs use the worker as a mixer).
// The conv runs as `kernel` shifted multiply-adds in the residual's dtype: cheaper than a
// depthwise conv1d (no (B, d, T) transposes, no slow depthwise weight-gradient kernel).
// Parameters: conv.{weight,bias}, norm1.weight, attn_{kv,q,gate,out}.weight, norm2.weight,
// ffn.{fc1,fc2}.{weight,bias}.
class WorkerBlockImpl : public torch::nn::Module {
 public:
  WorkerBlockImpl(const ModelConfig& config);
  // x: (B, T, d). bias: layout.bias for the compute dtype. cos/sin: (T, d_h) full-width RoPE
  // tables for all positions; cos_w/sin_w: (T_w, d_h) at the workers.
  // ffn_width (0: all of d_ff) or ffn_units: NestedGeluFfn's forward or ForwardMasked.
  torch::Tensor forward(const torch::Tensor& x, const WorkerLayout& layout,
                        const torch::Tensor& bias, const torch::Tensor& cos,
                        const torch::Tensor& sin, const torch::Tensor& cos_w,
                        const torch::Tensor& sin_w, int64_t ffn_width = 0,
                        const torch::Tensor& ffn_units = {});

  // forward for m tokens appended at positions [start, start + m) of a sequence (eval only).
  // conv_tail (B, K - 1, d): this layer's inputs at the K - 1 positions before start (zeros
  // before position 0). Keys and values of the m tokens go to `cache` (max_len positions); the
  // tokens at indices `workers` (W,) int64 of the chunk attend over the cached keys up to their
  // position and get their stream updated. cos/sin: (m, d_h) at the chunk's positions. With
  // `commit`, conv_tail moves on past the chunk; without, only the cache's slots of the chunk
  // change (the caller overwrites them).
  torch::Tensor ForwardCached(const torch::Tensor& x, torch::Tensor& conv_tail,
                              AttentionCache& cache, int64_t max_len, int64_t start,
                              const torch::Tensor& workers, const torch::Tensor& cos,
                              const torch::Tensor& sin, bool commit);

 private:
  torch::Tensor CausalConv(const torch::Tensor& x);

  int64_t kernel_;
  int64_t n_heads_;
  double dropout_;
  torch::nn::Conv1d conv_{nullptr};
  RmsNorm norm1_{nullptr};
  torch::nn::Linear kv_{nullptr};
  torch::nn::Linear q_{nullptr};
  torch::nn::Linear gate_{nullptr};
  torch::nn::Linear out_{nullptr};
  RmsNorm norm2_{nullptr};
  NestedGeluFfn ffn_{nullptr};
};
TORCH_MODULE(WorkerBlock);

// arch "worker": InplaceWorkerTransformer. Input X_t = E[tok_t] + [t is a worker] * e_w with the
// learned worker-type vector e_w ~ N(0, 0.02^2). Position t is a worker iff
// (t + phase) % k == k - 1, or t is the last position (WorkerPositions in model_config.h). Logits
// come out at every position, but only worker positions are trained (train_positions), so the
// fair evaluator runs NumEvalPhases() = k phases to score every position.
// Parameters: embed.weight, worker_type, blocks.{i}.*, norm_f.weight, head.weight.
class WorkerTransformer : public LanguageModelImpl {
 public:
  explicit WorkerTransformer(ModelConfig config);

  int64_t NumEvalPhases() const override { return config_.worker_interval; }
  torch::Tensor TrainPositions(int64_t seq_len, int64_t phase) const override;

  // KV-cache decoding: keys and values of every token at every layer (cache.attention[l]) and
  // each layer's last K - 1 conv inputs (cache.state[l]). The cache holds every position as it is
  // when a later token exists: a worker only where (t + phase) % k == k - 1. The last position
  // of a window is a worker as well, so the logits of a token that is not a true worker come
  // from a second, uncommitted pass that treats it as one.
  bool SupportsKvCache() const override { return true; }

 protected:
  // For Head::kHidden the final norm and the LM head run at the worker positions only.
  ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head head) override;
  torch::Tensor ExtendCache(KvCache& cache, const torch::Tensor& tokens) override;

 private:
  // Runs tokens (B, m) at positions [cache.length + offset, ...) through every layer, treating
  // as workers the true workers and, if `last_is_worker`, the last token; returns the final
  // stream (B, m, d). commit: see WorkerBlockImpl::ForwardCached.
  torch::Tensor RunCached(KvCache& cache, const torch::Tensor& tokens, int64_t offset,
                          bool last_is_worker, bool commit);

  torch::nn::Embedding embed_{nullptr};
  torch::Tensor worker_type_;
  RotaryTable rotary_{nullptr};
  torch::nn::ModuleList blocks_;
  RmsNorm norm_f_{nullptr};
  torch::nn::Linear head_{nullptr};
  WorkerLayouts layouts_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_WORKER_H_
