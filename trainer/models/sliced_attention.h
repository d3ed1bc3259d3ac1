#ifndef GAUNTLET_TRAINER_MODELS_SLICED_ATTENTION_H_
#define GAUNTLET_TRAINER_MODELS_SLICED_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>

#include "trainer/models/kv_cache.h"

namespace gauntlet {

// Sliced (chunked) causal self-attention, the causal-LM form of SReT's sliced group attention
// (docs/ARCHITECTURES.md "sliced_attn"): the window is cut into contiguous chunks of slice_len
// positions and token t attends to the tokens s <= t of its own chunk, floor(s / slice_len) ==
// floor(t / slice_len). Same projections, RoPE and output gate as GatedSelfAttention, so
// parameters are qkv.weight (3d, d), gate.weight, out.weight. Chunks are fixed by absolute
// position, so a token's output does not depend on the window length, and the last chunk is
// padded at its end: padding comes after every real token, so causal attention never reads it.
class SlicedSelfAttentionImpl : public torch::nn::Module {
 public:
  SlicedSelfAttentionImpl(int64_t d_model, int64_t n_heads, int64_t slice_len, double dropout);
  // h: (B, T, d), already normalised; cos/sin: full-width RoPE tables (T, d_h).
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin);
  // forward for tokens appended to a KV cache (eval only); chunks by absolute position.
  torch::Tensor ForwardCached(const torch::Tensor& h, const torch::Tensor& cos,
                              const torch::Tensor& sin, const CachedAttend& attend);

 private:
  int64_t n_heads_;
  int64_t slice_len_;
  double dropout_;
  torch::nn::Linear qkv_{nullptr};
  torch::nn::Linear gate_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(SlicedSelfAttention);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_SLICED_ATTENTION_H_
