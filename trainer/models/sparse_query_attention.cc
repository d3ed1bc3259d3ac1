#include "trainer/models/sparse_query_attention.h"

#include <torch/torch.h>

#include <vector>

#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/rotary.h"
#include "trainer/models/layers.h"

namespace gauntlet {

SparseQueryAttentionImpl::SparseQueryAttentionImpl(int64_t d_model, int64_t n_heads,
                                                   int64_t q_heads, int64_t kv_heads,
                                                   double dropout)
    : q_heads_(q_heads), kv_heads_(kv_heads), head_dim_(d_model / n_heads), dropout_(dropout) {
  TORCH_CHECK(q_heads > 0 && kv_heads > 0 && q_heads % kv_heads == 0,
              "SQA needs n_kv_heads dividing n_q_heads, got ", q_heads, " and ", kv_heads);
  const int64_t q_width = q_heads * head_dim_;
  auto bias_free = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  q_ = register_module("q", bias_free(d_model, q_width));
  kv_ = register_module("kv", bias_free(d_model, 2 * kv_heads * head_dim_));
  gate_ = register_module("gate", bias_free(d_model, q_width));
  out_ = register_module("out", bias_free(q_width, d_model));
}

torch::Tensor SparseQueryAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& cos,
                                                const torch::Tensor& sin) {
  const int64_t batch = h.size(0);
  const int64_t seq_len = h.size(1);
  const torch::Tensor q =
      kernels::RotaryHeads(q_(h).view({batch, seq_len, q_heads_, head_dim_}), cos, sin);
  const std::vector<torch::Tensor> kv = kernels::RotaryTranspose(
      kv_(h).view({batch, seq_len, 2, kv_heads_, head_dim_}), cos, sin, /*rotated=*/1);
  // enable_gqa: SDPA repeats each key/value head for its H_q / H_kv query heads without a copy.
  const torch::Tensor context = at::scaled_dot_product_attention(
      q, kv[0], kv[1], /*attn_mask=*/{}, is_training() ? dropout_ : 0.0, /*is_causal=*/true,
      /*scale=*/std::nullopt, /*enable_gqa=*/kv_heads_ != q_heads_);
  return out_(kernels::SigmoidGatedMerge(context, gate_(h)));
}

torch::Tensor SparseQueryAttentionImpl::ForwardCached(const torch::Tensor& h,
                                                      const torch::Tensor& cos,
                                                      const torch::Tensor& sin,
                                                      const CachedAttend& attend) {
  const int64_t batch = h.size(0);
  const int64_t n = h.size(1);
  const torch::Tensor q =
      kernels::RotaryHeads(q_(h).view({batch, n, q_heads_, head_dim_}), cos, sin);
  const std::vector<torch::Tensor> kv = kernels::RotaryTranspose(
      kv_(h).view({batch, n, 2, kv_heads_, head_dim_}), cos, sin, /*rotated=*/1);
  return out_(kernels::SigmoidGatedMerge(attend(q, kv[0], kv[1], /*slice_len=*/0), gate_(h)));
}

}  // namespace gauntlet
