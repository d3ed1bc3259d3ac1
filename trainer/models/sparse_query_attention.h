#ifndef GAUNTLET_TRAINER_MODELS_SPARSE_QUERY_ATTENTION_H_
#define GAUNTLET_TRAINER_MODELS_SPARSE_QUERY_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>

#include "trainer/models/kv_cache.h"

namespace gauntlet {

// Sparse Query Attention (docs/ARCHITECTURES.md "sqa"): the nominal head count H only fixes the
// head width d_h = d / H; the layer has H_q <= H query heads and H_kv key/value heads, H_kv
// dividing H_q. Query head j reads key/value head floor(j / (H_q / H_kv)) (GQA grouping), causal
// attention per query head, the gated-attention output gate of width H_q d_h, and
// W_O: H_q d_h -> d. Score and context FLOPs scale with H_q / H.
// Parameters (bias-free): q.weight (H_q d_h, d), kv.weight (2 H_kv d_h, d; rows K | V),
// gate.weight (H_q d_h, d), out.weight (d, H_q d_h).
class SparseQueryAttentionImpl : public torch::nn::Module {
 public:
  SparseQueryAttentionImpl(int64_t d_model, int64_t n_heads, int64_t q_heads, int64_t kv_heads,
                           double dropout);
  // h: (B, T, d), already normalised; cos/sin: full-width RoPE tables (T, d_h). Causal over T.
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin);
  // forward for tokens appended to a KV cache (eval only): the cache holds H_kv heads.
  torch::Tensor ForwardCached(const torch::Tensor& h, const torch::Tensor& cos,
                              const torch::Tensor& sin, const CachedAttend& attend);

 private:
  int64_t q_heads_;
  int64_t kv_heads_;
  int64_t head_dim_;
  double dropout_;
  torch::nn::Linear q_{nullptr};
  torch::nn::Linear kv_{nullptr};
  torch::nn::Linear gate_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(SparseQueryAttention);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_SPARSE_QUERY_ATTENTION_H_
