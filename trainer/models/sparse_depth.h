#ifndef GAUNTLET_TRAINER_MODELS_SPARSE_DEPTH_H_
#define GAUNTLET_TRAINER_MODELS_SPARSE_DEPTH_H_

#include <torch/torch.h>

#include <cstdint>

#include "trainer/models/layers.h"
#include "trainer/models/model.h"
#include "common/model_config.h"

namespace gauntlet {

// arch "sparse_depth": per-token depth routing with real compute skipping.
//
// Scheme: the first sparse_dense_layers layers are standard blocks over every token. Each later
// layer l has a router r_l = w_l . x_t + b_l (Linear d -> 1) on the token's current residual
// stream; the token is routed iff r_l > 0, and then x_t <- x_t + sigmoid(r_l) * Delta_l(x_t),
// where Delta_l is what the standard block (RMSNorm, RoPE, gated attention, GELU FFN) adds.
// Unrouted tokens pass through unchanged and cost nothing.
//
// Why token-local and not Mixture-of-Depths top-k: top-k over a row makes token t's selection
// depend on the router scores of later tokens, which breaks causality (and so autoregressive
// decoding). A threshold on the token's own logit depends only on tokens <= t. The sigmoid scale
// puts the router in the forward path so the LM loss teaches it which tokens gain from the layer
// (the seed's hard comparison gave it no gradient at all). A threshold has no built-in budget,
// so aux_loss = aux_loss_weight * mean over routed layers of (f_l - capacity)^2, where f_l is the
// share of the batch's tokens routed at layer l, made differentiable straight-through (forward:
// the hard share; backward: the gradient of mean_{b,t} sigmoid(r_l)). It pulls the realised
// share to `sparse_capacity`; tokens near the threshold move most, as sigmoid' peaks there. The
// aux loss mixes rows, but only in the loss: no row's output depends on another row.
//
// Slot bound (no device-to-host sync): each routed layer runs the block on a fixed number of
// slots per row, C = min(T, ceil(kSparseSlotFactor * sparse_capacity * T)), known on the host from T
// alone. A token is routed iff r_l > 0 AND fewer than C tokens before it in its row were routed,
// i.e. iff its inclusive running count of positive logits (a cumsum along the row) is <= C. That
// rule reads only tokens <= t, so it stays causal and row-local; top-k or "drop the lowest
// scores on overflow" would not. Tokens past the bound pass through as if unrouted. The aux loss
// keeps the realised share near sparse_capacity, so the bound binds only in outlier rows.
//
// Compute skipping: per row, routed token number n (1-based, in position order) goes to slot
// n - 1 of a (B, C, d) tensor; unused slots after the last routed one are padding (position 0,
// scale 0). The block runs on it with RoPE at the tokens' original positions and is_causal
// attention over the slot axis, and the scaled result is scattered back. Padding slots come after
// every real slot, so causal attention never lets a real token see padding, and rows never see
// each other.
//
// stats["layers_per_token"]: mean number of layers a token ran in this pass (dense + routed).
// Parameters: embed.weight, blocks.{i}.* (as standard), routers.{j}.{weight,bias} for layer
// sparse_dense_layers + j, norm_f.weight, head.weight.
class SparseDepthTransformer : public LanguageModelImpl {
 public:
  explicit SparseDepthTransformer(ModelConfig config);

  // C for a window of seq_len tokens (kSparseSlotFactor: the slot bound exceeds the target share
  // by this factor, leaving room for rows that route more than the average while still skipping
  // work at the default capacity 0.5, C = 0.75 T). Training FLOPs count this fixed work.
  int64_t Slots(int64_t seq_len) const { return SparseDepthSlots(config_, seq_len); }

  // KV-cache decoding. Routing uses the slot bound C of a window of cache.max_len tokens, so a
  // decoded sequence equals Forward over that whole window at every position (and Forward over
  // any prefix wherever the bound does not bind). Dense layers cache every token; routed layer
  // l caches only its routed tokens, in slot order: cache.attention[l] has C + 1 slots (the last
  // takes the writes of unrouted tokens and is never read) and cache.state[l - dense] counts per
  // row the tokens that wanted the layer so far.
  bool SupportsKvCache() const override { return true; }

 protected:
  ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head head) override;
  torch::Tensor ExtendCache(KvCache& cache, const torch::Tensor& tokens) override;

 private:
  torch::nn::Embedding embed_{nullptr};
  RotaryTable rotary_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::ModuleList routers_;
  RmsNorm norm_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_SPARSE_DEPTH_H_
