#include "trainer/models/layers.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace gauntlet {

namespace F = torch::nn::functional;

RmsNormImpl::RmsNormImpl(int64_t dim) : dim_(dim) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  // eps left unset: ATen then uses the input dtype's epsilon.
  return at::rms_norm(x, {dim_}, weight_);
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

std::pair<torch::Tensor, torch::Tensor> RotaryTableImpl::Prefix(int64_t len) const {
  TORCH_CHECK(len <= max_len_, "sequence length ", len, " exceeds model.seq_len ", max_len_);
  return {cos_.narrow(0, 0, len), sin_.narrow(0, 0, len)};
}

std::pair<torch::Tensor, torch::Tensor> RotaryTableImpl::At(const torch::Tensor& positions) const {
  const torch::Tensor flat = positions.reshape({-1});
  std::vector<int64_t> shape = positions.sizes().vec();
  shape.push_back(cos_.size(1));
  return {cos_.index_select(0, flat).view(shape), sin_.index_select(0, flat).view(shape)};
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  const torch::Tensor c = cos.to(x.scalar_type());
  const torch::Tensor s = sin.to(x.scalar_type());
  std::vector<int64_t> pairs = x.sizes().vec();
  pairs.back() /= 2;
  pairs.push_back(2);
  const torch::Tensor xp = x.view(pairs);
  const torch::Tensor even = xp.select(-1, 0);
  const torch::Tensor odd = xp.select(-1, 1);
  return torch::stack({even * c - odd * s, even * s + odd * c}, -1).flatten(-2);
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
  const std::vector<torch::Tensor> qkv = qkv_(h).chunk(3, /*dim=*/-1);
  const torch::Tensor q = ApplyRotary(SplitHeads(qkv[0], n_heads_), cos, sin);
  const torch::Tensor k = ApplyRotary(SplitHeads(qkv[1], n_heads_), cos, sin);
  const torch::Tensor v = SplitHeads(qkv[2], n_heads_);
  const torch::Tensor context = at::scaled_dot_product_attention(
      q, k, v, /*attn_mask=*/{}, is_training() ? dropout_ : 0.0, /*is_causal=*/true);
  return out_(MergeHeads(context) * torch::sigmoid(gate_(h)));
}

GeluFfnImpl::GeluFfnImpl(int64_t d_model, int64_t d_hidden) {
  fc1_ = register_module("fc1", torch::nn::Linear(d_model, d_hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(d_hidden, d_model));
}

torch::Tensor GeluFfnImpl::forward(const torch::Tensor& x) { return fc2_(torch::gelu(fc1_(x))); }

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
  const torch::Tensor h = x + F::dropout(attn_(norm1_(x), cos, sin), drop);
  return h + F::dropout(ffn_(norm2_(h)), drop);
}

torch::Tensor TransformerBlockImpl::Delta(const torch::Tensor& x, const torch::Tensor& cos,
                                          const torch::Tensor& sin) {
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  const torch::Tensor attn = F::dropout(attn_(norm1_(x), cos, sin), drop);
  return attn + F::dropout(ffn_(norm2_(x + attn)), drop);
}

}  // namespace gauntlet
