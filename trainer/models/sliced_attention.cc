#include "trainer/models/sliced_attention.h"

#include <torch/torch.h>

#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/rotary.h"
#include "trainer/models/layers.h"

namespace gauntlet {

namespace F = torch::nn::functional;

SlicedSelfAttentionImpl::SlicedSelfAttentionImpl(int64_t d_model, int64_t n_heads,
                                                 int64_t slice_len, double dropout)
    : n_heads_(n_heads), slice_len_(slice_len), dropout_(dropout) {
  TORCH_CHECK(slice_len > 0, "sliced attention needs a positive slice length, got ", slice_len);
  auto bias_free = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  qkv_ = register_module("qkv", bias_free(d_model, 3 * d_model));
  gate_ = register_module("gate", bias_free(d_model, d_model));
  out_ = register_module("out", bias_free(d_model, d_model));
}

torch::Tensor SlicedSelfAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& cos,
                                               const torch::Tensor& sin) {
  const int64_t batch = h.size(0);
  const int64_t seq_len = h.size(1);
  const kernels::QkvHeads heads =
      kernels::RotaryQkv(qkv_(h).view({batch, seq_len, 3, n_heads_, -1}), cos, sin);
  const int64_t width = std::min(slice_len_, seq_len);
  const int64_t chunks = (seq_len + width - 1) / width;
  const int64_t padded = chunks * width;
  // (B, H, T, d_h) -> (B, H * chunks, width, d_h): every chunk is its own causal sequence.
  auto chunked = [&](const torch::Tensor& x) {
    const torch::Tensor full =
        padded == seq_len ? x : F::pad(x, F::PadFuncOptions({0, 0, 0, padded - seq_len}));
    return full.reshape({batch, n_heads_ * chunks, width, full.size(3)});
  };
  const torch::Tensor context =
      at::scaled_dot_product_attention(chunked(heads.q), chunked(heads.k), chunked(heads.v),
                                       /*attn_mask=*/{}, is_training() ? dropout_ : 0.0,
                                       /*is_causal=*/true)
          .reshape({batch, n_heads_, padded, -1})
          .narrow(2, 0, seq_len);
  return out_(kernels::SigmoidGatedMerge(context, gate_(h)));
}

torch::Tensor SlicedSelfAttentionImpl::ForwardCached(const torch::Tensor& h,
                                                     const torch::Tensor& cos,
                                                     const torch::Tensor& sin,
                                                     const CachedAttend& attend) {
  const kernels::QkvHeads heads =
      kernels::RotaryQkv(qkv_(h).view({h.size(0), h.size(1), 3, n_heads_, -1}), cos, sin);
  return out_(
      kernels::SigmoidGatedMerge(attend(heads.q, heads.k, heads.v, slice_len_), gate_(h)));
}

}  // namespace gauntlet
