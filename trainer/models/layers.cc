#include "trainer/models/layers.h"

#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/gelu_ffn.h"
#include "trainer/kernels/rms_norm.h"
#include "trainer/kernels/rotary.h"

#include <cmath>
#include <string>
#include <vector>

namespace gauntlet {

namespace F = torch::nn::functional;

RmsNormImpl::RmsNormImpl(int64_t dim) : dim_(dim) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  return kernels::RmsNorm(x, weight_, GemmInputDtype(x));
}

RotaryTableImpl::RotaryTableImpl(int64_t head_dim, int64_t max_len, double base)
    : max_len_(max_len) {
  TORCH_CHECK(head_dim % 2 == 0, "RoPE needs an even head width, got ", head_dim);
  const int64_t half = head_dim / 2;
  // Angles in double: t * base^(-2i/d_h) loses precision in fp32 at long contexts.
  const torch::Tensor inv_freq = torch::pow(
      base, -torch::arange(0, half, torch::kFloat64) * 2.0 / static_cast<double>(head_dim));
  const torch::Tensor angles = torch::outer(torch::arange(0, max_len, torch::kFloat64), inv_freq);
  cos_ = register_buffer("cos", angles.cos().to(torch::kFloat32));
  sin_ = register_buffer("sin", angles.sin().to(torch::kFloat32));
}

const std::pair<torch::Tensor, torch::Tensor>& RotaryTableImpl::Full(
    torch::ScalarType dtype) const {
  const auto key = std::make_pair(cos_.device().str(), dtype);
  auto it = full_.find(key);
  if (it != full_.end()) return it->second;
  // Cached tensors outlive this call: make them normal tensors even if the first caller runs
  // under InferenceMode, so a later training pass may save them for backward.
  c10::InferenceMode normal_mode(false);
  // Pair (2i, 2i+1): out_2i = x_2i c - x_2i+1 s, out_2i+1 = x_2i+1 c + x_2i s. With the pair
  // swapped copy (x_2i+1, x_2i) that is x * (c, c) + swap(x) * (-s, s); negation is exact, so
  // this rounds exactly like the pairwise form.
  const torch::Tensor cos = torch::stack({cos_, cos_}, -1).flatten(-2).to(dtype);
  const torch::Tensor sin = torch::stack({-sin_, sin_}, -1).flatten(-2).to(dtype);
  return full_[key] = {cos, sin};
}

std::pair<torch::Tensor, torch::Tensor> RotaryTableImpl::Prefix(int64_t len,
                                                                torch::ScalarType dtype) const {
  TORCH_CHECK(len <= max_len_, "sequence length ", len, " exceeds model.seq_len ", max_len_);
  const auto& [cos, sin] = Full(dtype);
  return {cos.narrow(0, 0, len), sin.narrow(0, 0, len)};
}

std::pair<torch::Tensor, torch::Tensor> RotaryTableImpl::At(const torch::Tensor& positions,
                                                            torch::ScalarType dtype) const {
  const auto& [cos, sin] = Full(dtype);
  const torch::Tensor flat = positions.reshape({-1});
  std::vector<int64_t> shape = positions.sizes().vec();
  shape.push_back(cos.size(1));
  return {cos.index_select(0, flat).view(shape), sin.index_select(0, flat).view(shape)};
}

torch::ScalarType ComputeDtype(const torch::Device& device) {
  if (at::autocast::is_autocast_enabled(device.type())) {
    return at::autocast::get_autocast_dtype(device.type());
  }
  return torch::kFloat32;
}

torch::Tensor ApplyLinear(const torch::nn::LinearImpl& layer, const torch::Tensor& x) {
  return at::linear(x, layer.weight, layer.bias);
}

torch::Tensor ApplyGeluFfn(const torch::nn::LinearImpl& fc1, const torch::nn::LinearImpl& fc2,
                           const torch::Tensor& x) {
  return kernels::GeluFfn(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias);
}

torch::ScalarType GemmInputDtype(const torch::Tensor& x) {
  const c10::DeviceType type = x.device().type();
  return at::autocast::is_autocast_enabled(type) ? at::autocast::get_autocast_dtype(type)
                                                 : x.scalar_type();
}

torch::Tensor SplitHeads(const torch::Tensor& x, int64_t n_heads) {
  return x.view({x.size(0), x.size(1), n_heads, x.size(2) / n_heads}).transpose(1, 2);
}

torch::Tensor MergeHeads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

GatedSelfAttentionImpl::GatedSelfAttentionImpl(int64_t d_model, int64_t n_heads, double dropout)
    : n_heads_(n_heads), dropout_(dropout) {
  qkv_ = register_module(
      "qkv", torch::nn::Linear(torch::nn::LinearOptions(d_model, 3 * d_model).bias(false)));
  gate_ = register_module(
      "gate", torch::nn::Linear(torch::nn::LinearOptions(d_model, d_model).bias(false)));
  out_ = register_module("out",
                         torch::nn::Linear(torch::nn::LinearOptions(d_model, d_model).bias(false)));
}

torch::Tensor GatedSelfAttentionImpl::forward(const torch::Tensor& h, const torch::Tensor& cos,
                                              const torch::Tensor& sin) {
  const int64_t batch = h.size(0);
  const int64_t seq_len = h.size(1);
  // (B, T, 3, heads, d_h) -> Q and K rotated and Q, K, V laid out (B, heads, T, d_h) in one pass.
  const kernels::QkvHeads heads =
      kernels::RotaryQkv(qkv_(h).view({batch, seq_len, 3, n_heads_, -1}), cos, sin);
  const torch::Tensor context = at::scaled_dot_product_attention(
      heads.q, heads.k, heads.v, /*attn_mask=*/{}, is_training() ? dropout_ : 0.0,
      /*is_causal=*/true);
  return out_(kernels::SigmoidGatedMerge(context, gate_(h)));
}

torch::Tensor GatedSelfAttentionImpl::ForwardCached(const torch::Tensor& h,
                                                    const torch::Tensor& cos,
                                                    const torch::Tensor& sin,
                                                    const CachedAttend& attend) {
  const kernels::QkvHeads heads =
      kernels::RotaryQkv(qkv_(h).view({h.size(0), h.size(1), 3, n_heads_, -1}), cos, sin);
  const torch::Tensor context = attend(heads.q, heads.k, heads.v, /*slice_len=*/0);
  return out_(kernels::SigmoidGatedMerge(context, gate_(h)));
}

GeluFfnImpl::GeluFfnImpl(int64_t d_model, int64_t d_hidden) {
  fc1_ = register_module("fc1", torch::nn::Linear(d_model, d_hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(d_hidden, d_model));
}

torch::Tensor GeluFfnImpl::forward(const torch::Tensor& x) {
  return ApplyGeluFfn(*fc1_, *fc2_, x);
}

TransformerBlockImpl::TransformerBlockImpl(int64_t d_model, int64_t n_heads, int64_t d_ff,
                                           double dropout)
    : dropout_(dropout) {
  norm1_ = register_module("norm1", RmsNorm(d_model));
  attn_ = register_module("attn", GatedSelfAttention(d_model, n_heads, dropout));
  norm2_ = register_module("norm2", RmsNorm(d_model));
  ffn_ = register_module("ffn", GeluFfn(d_model, d_ff));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                            const torch::Tensor& sin) {
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  // The residual add and the second norm in one pass over the stream. The stream keeps its
  // dtype (float32 under autocast, as x + delta would promote to); the bf16 branches join it
  // without a cast pass.
  const torch::Tensor attn = F::dropout(attn_(norm1_(x), cos, sin), drop);
  const kernels::AddRmsNormResult mid =
      kernels::AddRmsNorm(x, attn, norm2_->weight(), GemmInputDtype(x));
  return kernels::ResidualAdd(mid.sum, F::dropout(ffn_(mid.normed), drop));
}

torch::Tensor TransformerBlockImpl::Delta(const torch::Tensor& x, const torch::Tensor& cos,
                                          const torch::Tensor& sin) {
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  const torch::Tensor attn = F::dropout(attn_(norm1_(x), cos, sin), drop);
  return attn + F::dropout(
                    ffn_(kernels::AddRmsNorm(x, attn, norm2_->weight(), GemmInputDtype(x)).normed),
                    drop);
}

torch::Tensor TransformerBlockImpl::ForwardCached(const torch::Tensor& x, const torch::Tensor& cos,
                                                  const torch::Tensor& sin,
                                                  const CachedAttend& attend) {
  const torch::Tensor attn = attn_->ForwardCached(norm1_(x), cos, sin, attend);
  const kernels::AddRmsNormResult mid =
      kernels::AddRmsNorm(x, attn, norm2_->weight(), GemmInputDtype(x));
  return kernels::ResidualAdd(mid.sum, ffn_(mid.normed));
}

torch::Tensor TransformerBlockImpl::DeltaCached(const torch::Tensor& x, const torch::Tensor& cos,
                                                const torch::Tensor& sin,
                                                const CachedAttend& attend) {
  const torch::Tensor attn = attn_->ForwardCached(norm1_(x), cos, sin, attend);
  return attn + ffn_(kernels::AddRmsNorm(x, attn, norm2_->weight(), GemmInputDtype(x)).normed);
}

}  // namespace gauntlet
