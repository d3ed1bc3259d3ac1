#include "trainer/models/hybrid.h"

#include <torch/torch.h>

#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/rms_norm.h"

#include <utility>

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
      F::dropout(ApplyLinear(*fc_b_, torch::gelu(ApplyLinear(*fc_a_, norm1_(x)))), drop);
  const kernels::AddRmsNormResult mid =
      kernels::AddRmsNorm(x, delta, norm2_->weight(), GemmInputDtype(x));
  return kernels::ResidualAdd(mid.sum, F::dropout(ffn_(mid.normed), drop));
}

HybridTransformer::HybridTransformer(ModelConfig config) : LanguageModelImpl(std::move(config)) {
  const ModelConfig& c = config_;
  TORCH_CHECK(static_cast<int64_t>(c.hybrid_attention_layers.size()) == c.n_layers,
              "model.hybrid.layer_types: needs one entry per layer");
  embed_ = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
  rotary_ = register_module("rotary", RotaryTable(c.d_model / c.n_heads, c.seq_len));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) {
    if (c.hybrid_attention_layers[i]) {
      blocks_->push_back(TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout));
    } else {
      blocks_->push_back(StaticMlpBlock(c.d_model, c.hybrid_static_mlp_ratio, c.d_ff, c.dropout));
    }
  }
  norm_f_ = register_module("norm_f", RmsNorm(c.d_model));
  head_ = register_module(
      "head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
}

ModelOutput HybridTransformer::Run(const torch::Tensor& tokens, int64_t /*phase*/, Head head) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  const int64_t seq_len = tokens.size(1);
  const auto [cos, sin] = rotary_->Prefix(seq_len, ComputeDtype(tokens.device()));
  torch::Tensor x = embed_(tokens);
  for (int64_t i = 0; i < config_.n_layers; ++i) {
    if (config_.hybrid_attention_layers[i]) {
      x = blocks_[i]->as<TransformerBlock>()->forward(x, cos, sin);
    } else {
      x = blocks_[i]->as<StaticMlpBlock>()->forward(x);
    }
  }
  ModelOutput out;
  FinishHead(out, norm_f_(x), head_, head);
  out.train_positions = torch::ones({seq_len}, tokens.options().dtype(torch::kBool));
  out.aux_loss = torch::zeros({}, tokens.options().dtype(torch::kFloat32));
  return out;
}

double HybridTransformer::TrainingFlopsPerToken(int64_t seq_len) const {
  const ModelConfig& c = config_;
  const double d = c.d_model;
  const double ffn = TrainingMatmulFlops(2.0 * d * c.d_ff);
  double total = TrainingMatmulFlops(d * c.vocab_size);
  for (const bool attention : c.hybrid_attention_layers) {
    total +=
        ffn + (attention ? TrainingMatmulFlops(5.0 * d * d) + TrainingAttentionFlops(d, seq_len)
                         : TrainingMatmulFlops(2.0 * c.hybrid_static_mlp_ratio * d * d));
  }
  return total;
}

}  // namespace gauntlet
