#include "trainer/models/sparse_depth.h"

#include <torch/torch.h>

#include <utility>

namespace gauntlet {

SparseDepthTransformer::SparseDepthTransformer(ModelConfig config)
    : LanguageModelImpl(std::move(config)) {
  const ModelConfig& c = config_;
  embed_ = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
  rotary_ = register_module("rotary", RotaryTable(c.d_model / c.n_heads, c.seq_len));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  routers_ = register_module("routers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) {
    blocks_->push_back(TransformerBlock(c.d_model, c.n_heads, c.d_ff, c.dropout));
    if (i >= c.sparse_dense_layers) routers_->push_back(torch::nn::Linear(c.d_model, 1));
  }
  norm_f_ = register_module("norm_f", RmsNorm(c.d_model));
  head_ = register_module(
      "head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
}

ModelOutput SparseDepthTransformer::Forward(const torch::Tensor& tokens, int64_t /*phase*/) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  const ModelConfig& c = config_;
  const int64_t batch = tokens.size(0);
  const int64_t seq_len = tokens.size(1);
  const auto [cos, sin] = rotary_->Prefix(seq_len);
  torch::Tensor x = embed_(tokens);
  torch::Tensor aux = torch::zeros({}, x.options().dtype(torch::kFloat32));
  int64_t routed_total = 0;

  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto block = blocks_[i]->as<TransformerBlock>();
    if (i < c.sparse_dense_layers) {
      x = block->forward(x, cos, sin);
      continue;
    }
    auto router = routers_[i - c.sparse_dense_layers]->as<torch::nn::Linear>();
    const torch::Tensor logit = router->forward(x).squeeze(-1).to(torch::kFloat32);  // (B, T)
    const torch::Tensor prob = torch::sigmoid(logit);
    const torch::Tensor routed = logit > 0;
    // Straight-through routed fraction: its value is the real share of routed tokens, its
    // gradient that of the mean probability, so the budget error itself is what gets minimised
    // (matching only the mean probability would let a saturated router route all or nothing).
    const torch::Tensor mean_prob = prob.mean();
    const torch::Tensor fraction =
        routed.to(torch::kFloat32).mean() + (mean_prob - mean_prob.detach());
    aux = aux + (fraction - c.sparse_capacity).pow(2);
    const torch::Tensor count = routed.sum(1);  // (B,)
    const int64_t max_routed = count.max().item<int64_t>();
    routed_total += count.sum().item<int64_t>();
    if (max_routed == 0) continue;

    // Stable sort on "not routed" puts each row's routed positions first, in original order.
    const torch::Tensor order =
        std::get<1>(torch::sort(routed.logical_not().to(torch::kUInt8), /*stable=*/true,
                                /*dim=*/1, /*descending=*/false));
    const torch::Tensor slots = order.narrow(1, 0, max_routed);  // (B, R) original positions
    const torch::Tensor valid =
        torch::arange(max_routed, count.options()).unsqueeze(0) < count.unsqueeze(1);
    const torch::Tensor gather_index = slots.unsqueeze(-1).expand({batch, max_routed, c.d_model});
    const torch::Tensor x_routed = x.gather(1, gather_index);
    const auto [cos_r, sin_r] = rotary_->At(slots);
    const torch::Tensor delta = block->Delta(x_routed, cos_r.unsqueeze(1), sin_r.unsqueeze(1));
    // Padding slots hold distinct unrouted positions; their zero scale leaves those unchanged.
    const torch::Tensor scale = prob.gather(1, slots) * valid.to(torch::kFloat32);
    x = x.scatter_add(1, gather_index, (delta * scale.unsqueeze(-1)).to(x.scalar_type()));
  }

  ModelOutput out;
  out.logits = head_(norm_f_(x));
  out.train_positions = torch::ones({seq_len}, tokens.options().dtype(torch::kBool));
  const int64_t n_routed_layers = c.n_layers - c.sparse_dense_layers;
  out.aux_loss = n_routed_layers > 0
                     ? aux * (c.sparse_aux_loss_weight / static_cast<double>(n_routed_layers))
                     : aux;
  out.stats["layers_per_token"] = c.sparse_dense_layers + static_cast<double>(routed_total) /
                                                              static_cast<double>(batch * seq_len);
  return out;
}

double SparseDepthTransformer::TrainingFlopsPerToken(int64_t seq_len) const {
  const ModelConfig& c = config_;
  const double d = c.d_model;
  const double block = TrainingMatmulFlops(5.0 * d * d + 2.0 * d * c.d_ff);
  const double dense = block + TrainingAttentionFlops(d, seq_len);
  const double cap = c.sparse_capacity;
  const double routed =
      TrainingMatmulFlops(d) + cap * block + cap * TrainingAttentionFlops(d, cap * seq_len);
  return c.sparse_dense_layers * dense + (c.n_layers - c.sparse_dense_layers) * routed +
         TrainingMatmulFlops(d * c.vocab_size);
}

}  // namespace gauntlet
