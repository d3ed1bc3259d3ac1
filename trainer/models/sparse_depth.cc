#include "trainer/models/sparse_depth.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
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

ModelOutput SparseDepthTransformer::Run(const torch::Tensor& tokens, int64_t /*phase*/, Head head) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  const ModelConfig& c = config_;
  const int64_t batch = tokens.size(0);
  const int64_t seq_len = tokens.size(1);
  const int64_t slots = Slots(seq_len);
  const torch::ScalarType dtype = ComputeDtype(tokens.device());
  const auto [cos, sin] = rotary_->Prefix(seq_len, dtype);
  const torch::Tensor positions =
      torch::arange(seq_len, tokens.options()).unsqueeze(0).expand({batch, seq_len});
  const torch::Tensor slot_ids = torch::arange(slots, tokens.options()).unsqueeze(0);  // (1, C)
  torch::Tensor x = embed_(tokens);
  torch::Tensor aux = torch::zeros({}, x.options().dtype(torch::kFloat32));
  torch::Tensor routed_share = torch::zeros({}, x.options().dtype(torch::kFloat32));

  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto block = blocks_[i]->as<TransformerBlock>();
    if (i < c.sparse_dense_layers) {
      x = block->forward(x, cos, sin);
      continue;
    }
    auto router = routers_[i - c.sparse_dense_layers]->as<torch::nn::Linear>();
    const torch::Tensor logit =
        ApplyLinear(*router, x).squeeze(-1).to(torch::kFloat32);  // (B, T)
    const torch::Tensor prob = torch::sigmoid(logit);
    // Inclusive running count of positive logits: token t is routed iff it wants to be and at
    // most C tokens up to it want to, so at most C per row and only tokens <= t decide.
    const torch::Tensor wants = logit > 0;
    const torch::Tensor rank = wants.cumsum(1);  // int64
    const torch::Tensor routed = wants.logical_and(rank <= slots);
    const torch::Tensor routed_f = routed.to(torch::kFloat32);
    // Straight-through routed fraction: its value is the real share of routed tokens, its
    // gradient that of the mean probability, so the budget error itself is what gets minimised
    // (matching only the mean probability would let a saturated router route all or nothing).
    const torch::Tensor mean_prob = prob.mean();
    const torch::Tensor fraction = routed_f.mean() + (mean_prob - mean_prob.detach());
    aux = aux + (fraction - c.sparse_capacity).pow(2);
    routed_share = routed_share + routed_f.detach().mean();

    // Routed token n of a row goes to slot n - 1; the rest to a spill column C that is dropped.
    const torch::Tensor target = torch::where(routed, rank - 1, torch::full_like(rank, slots));
    const torch::Tensor slot_pos =
        torch::zeros({batch, slots + 1}, tokens.options()).scatter(1, target, positions)
            .narrow(1, 0, slots);  // (B, C) original positions; padding holds 0
    const torch::Tensor valid = slot_ids < routed.sum(1, /*keepdim=*/true);  // (B, C)
    const torch::Tensor gather_index = slot_pos.unsqueeze(-1).expand({batch, slots, c.d_model});
    const torch::Tensor x_routed = x.gather(1, gather_index);
    const auto [cos_r, sin_r] = rotary_->At(slot_pos, dtype);
    const torch::Tensor delta = block->Delta(x_routed, cos_r, sin_r);
    // Padding slots all point at position 0; their zero scale adds nothing there.
    const torch::Tensor scale = prob.gather(1, slot_pos) * valid.to(torch::kFloat32);
    x = x.scatter_add(1, gather_index, (delta * scale.unsqueeze(-1)).to(x.scalar_type()));
  }

  ModelOutput out;
  FinishHead(out, norm_f_(x), head_, head);
  out.train_positions = torch::ones({seq_len}, tokens.options().dtype(torch::kBool));
  const int64_t n_routed_layers = c.n_layers - c.sparse_dense_layers;
  out.aux_loss = n_routed_layers > 0
                     ? aux * (c.sparse_aux_loss_weight / static_cast<double>(n_routed_layers))
                     : aux;
  out.stats["layers_per_token"] = routed_share + static_cast<double>(c.sparse_dense_layers);
  return out;
}

torch::Tensor SparseDepthTransformer::ExtendCache(KvCache& cache, const torch::Tensor& tokens) {
  const ModelConfig& c = config_;
  const int64_t batch = tokens.size(0);
  const int64_t n = tokens.size(1);
  const int64_t start = cache.length;
  const int64_t slots = Slots(cache.max_len);
  const int64_t n_routed = c.n_layers - c.sparse_dense_layers;
  if (cache.attention.empty()) {
    cache.attention.resize(c.n_layers);
    for (int64_t j = 0; j < n_routed; ++j) {
      cache.state.push_back(torch::zeros({batch}, tokens.options()));
    }
  }
  const auto [cos_all, sin_all] = rotary_->Prefix(start + n, ComputeDtype(tokens.device()));
  const torch::Tensor cos = cos_all.narrow(0, start, n);
  const torch::Tensor sin = sin_all.narrow(0, start, n);
  torch::Tensor x = embed_(tokens);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto block = blocks_[i]->as<TransformerBlock>();
    if (i < c.sparse_dense_layers) {
      x = block->ForwardCached(x, cos, sin, BindAttention(cache.attention[i], cache));
      continue;
    }
    torch::Tensor& wanted_before = cache.state[i - c.sparse_dense_layers];
    auto router = routers_[i - c.sparse_dense_layers]->as<torch::nn::Linear>();
    const torch::Tensor logit = ApplyLinear(*router, x).squeeze(-1).to(torch::kFloat32);  // (B, n)
    const torch::Tensor wants = logit > 0;
    // Run's rule with the running count carried over from the cached tokens.
    const torch::Tensor rank = wants.cumsum(1) + wanted_before.unsqueeze(1);
    const torch::Tensor routed = wants.logical_and(rank <= slots);
    const torch::Tensor target = torch::where(routed, rank - 1, torch::full_like(rank, slots));
    // Slots a token reads: those of the routed tokens up to it (itself included if routed); an
    // unrouted token with none before it reads slot 0, finite, and its result is scaled by 0.
    const torch::Tensor visible =
        torch::clamp_min(torch::minimum(rank, torch::full_like(rank, slots)), 1);
    AttentionCache& entry = cache.attention[i];
    auto attend = [&](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                      int64_t) {
      if (!entry.k.defined()) {
        entry.k = torch::zeros({batch, k.size(1), slots + 1, k.size(3)}, k.options());
        entry.v = torch::zeros_like(entry.k);
      }
      const torch::Tensor index = target.view({batch, 1, n, 1}).expand(k.sizes());
      entry.k.scatter_(2, index, k);
      entry.v.scatter_(2, index, v);
      const torch::Tensor mask =
          (torch::arange(slots + 1, tokens.options()).view({1, 1, slots + 1}) <
           visible.unsqueeze(-1))
              .unsqueeze(1);  // (B, 1, n, C + 1)
      return at::scaled_dot_product_attention(q, entry.k, entry.v, mask, /*dropout_p=*/0.0,
                                              /*is_causal=*/false);
    };
    const torch::Tensor delta = block->DeltaCached(x, cos, sin, attend);
    const torch::Tensor scale = torch::sigmoid(logit) * routed.to(torch::kFloat32);
    x = x + (delta * scale.unsqueeze(-1)).to(x.scalar_type());
    wanted_before = rank.select(1, n - 1);
  }
  return head_(norm_f_(x.select(1, n - 1)));
}

}  // namespace gauntlet
