#include "trainer/models/standard.h"

#include <torch/torch.h>

#include <utility>

namespace gauntlet {

StandardTransformer::StandardTransformer(ModelConfig config)
    : LanguageModelImpl(std::move(config)) {
  const ModelConfig& c = config_;
  embed_ = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
  rotary_ = register_module("rotary", RotaryTable(c.d_model / c.n_heads, c.seq_len));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) {
    blocks_->push_back(TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout));
  }
  norm_f_ = register_module("norm_f", RmsNorm(c.d_model));
  head_ = register_module(
      "head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
}

ModelOutput StandardTransformer::Run(const torch::Tensor& tokens, int64_t /*phase*/, Head head) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  const int64_t seq_len = tokens.size(1);
  const auto [cos, sin] = rotary_->Prefix(seq_len, ComputeDtype(tokens.device()));
  torch::Tensor x = embed_(tokens);
  for (const auto& block : *blocks_) x = block->as<TransformerBlock>()->forward(x, cos, sin);
  ModelOutput out;
  FinishHead(out, norm_f_(x), head_, head);
  out.train_positions = torch::ones({seq_len}, tokens.options().dtype(torch::kBool));
  out.aux_loss = torch::zeros({}, tokens.options().dtype(torch::kFloat32));
  return out;
}

double StandardTransformer::TrainingFlopsPerToken(int64_t seq_len) const {
  const ModelConfig& c = config_;
  const double d = c.d_model;
  const double per_layer =
      TrainingMatmulFlops(5.0 * d * d + 2.0 * d * c.d_ff) + TrainingAttentionFlops(d, seq_len);
  return c.n_layers * per_layer + TrainingMatmulFlops(d * c.vocab_size);
}

}  // namespace gauntlet
