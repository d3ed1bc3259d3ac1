#include "trainer/models/hybrid.h"

#include <torch/torch.h>

#include <utility>

#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/rms_norm.h"

namespace gauntlet {

namespace F = torch::nn::functional;

StaticMlpBlockImpl::StaticMlpBlockImpl(int64_t d_model, int64_t ratio, int64_t d_ff, double dropout)
    : dropout_(dropout) {
  norm1_ = register_module("norm1", RmsNorm(d_model));
  fc_a_ = register_module("static_mlp_a", torch::nn::Linear(d_model, ratio * d_model));
  fc_b_ = register_module("static_mlp_b", torch::nn::Linear(ratio * d_model, d_model));
  norm2_ = register_module("norm2", RmsNorm(d_model));
  ffn_ = register_module("ffn", GeluFfn(d_model, d_ff));
}

torch::Tensor StaticMlpBlockImpl::forward(const torch::Tensor& x) {
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  const torch::Tensor delta =
      F::dropout(ApplyGeluFfn(*fc_a_, *fc_b_, norm1_(x)), drop);
  const kernels::AddRmsNormResult mid =
      kernels::AddRmsNorm(x, delta, norm2_->weight(), GemmInputDtype(x));
  return kernels::ResidualAdd(mid.sum, F::dropout(ffn_(mid.normed), drop));
}

HybridTransformer::HybridTransformer(ModelConfig config) : TrunkTransformer(std::move(config)) {
  const ModelConfig& c = config_;
  TORCH_CHECK(static_cast<int64_t>(c.hybrid_attention_layers.size()) == c.n_layers,
              "model.hybrid.layer_types: needs one entry per layer");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    if (c.hybrid_attention_layers[i]) {
      TransformerBlock block(c.d_model, c.n_heads, c.d_ff, c.dropout);
      AddBlock(block.ptr(),
               [block](const torch::Tensor& x, const torch::Tensor& cos,
                       const torch::Tensor& sin) mutable { return block->forward(x, cos, sin); },
               [block](const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                       const CachedAttend& attend) mutable {
                 return block->ForwardCached(x, cos, sin, attend);
               });
    } else {
      StaticMlpBlock block(c.d_model, c.hybrid_static_mlp_ratio, c.d_ff, c.dropout);
      // Per-token: no cache entry; decoding runs it on the new tokens alone.
      AddBlock(
          block.ptr(),
          [block](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) mutable {
            return block->forward(x);
          },
          [block](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&,
                  const CachedAttend&) mutable { return block->forward(x); });
    }
  }
}

}  // namespace gauntlet
