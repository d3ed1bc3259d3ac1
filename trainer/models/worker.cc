#include "trainer/models/worker.h"

#include <torch/torch.h>

#include <utility>
#include <vector>

namespace gauntlet {

namespace F = torch::nn::functional;

WorkerBlockImpl::WorkerBlockImpl(const ModelConfig& c)
    : kernel_(c.worker_conv_kernel), n_heads_(c.n_heads), dropout_(c.dropout) {
  const int64_t d = c.d_model;
  // Depthwise (groups = d) with bias; padding is added on the left in forward to stay causal.
  conv_ = register_module(
      "conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(d, d, kernel_).groups(d).bias(true)));
  norm1_ = register_module("norm1", RmsNorm(d));
  auto bias_free = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  kv_ = register_module("attn_kv", bias_free(d, 2 * d));
  q_ = register_module("attn_q", bias_free(d, d));
  gate_ = register_module("attn_gate", bias_free(d, d));
  out_ = register_module("attn_out", bias_free(d, d));
  norm2_ = register_module("norm2", RmsNorm(d));
  ffn_ = register_module("ffn", GeluFfn(d, c.d_ff));
}

torch::Tensor WorkerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& workers,
                                       const torch::Tensor& key_mask, const torch::Tensor& cos,
                                       const torch::Tensor& sin, const torch::Tensor& cos_w,
                                       const torch::Tensor& sin_w) {
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  // Token mixer over time: (B, T, d) -> (B, d, T), k-1 zeros on the left only.
  const torch::Tensor mixed =
      conv_(F::pad(x.transpose(1, 2), F::PadFuncOptions({kernel_ - 1, 0}))).transpose(1, 2);
  const torch::Tensor h = norm1_(mixed);
  const std::vector<torch::Tensor> kv = kv_(h).chunk(2, /*dim=*/-1);
  const torch::Tensor k = ApplyRotary(SplitHeads(kv[0], n_heads_), cos, sin);
  const torch::Tensor v = SplitHeads(kv[1], n_heads_);

  const torch::Tensor h_w = h.index_select(1, workers);
  const torch::Tensor q = ApplyRotary(SplitHeads(q_(h_w), n_heads_), cos_w, sin_w);
  // Queries are a strided subset, so causality needs the explicit (T_w, T) mask.
  const torch::Tensor context = at::scaled_dot_product_attention(
      q, k, v, key_mask, is_training() ? dropout_ : 0.0, /*is_causal=*/false);
  const torch::Tensor attn = out_(MergeHeads(context) * torch::sigmoid(gate_(h_w)));

  // Residual on the raw stream at the workers only; everything else passes through unchanged.
  torch::Tensor x_w = x.index_select(1, workers) + F::dropout(attn, drop);
  x_w = x_w + F::dropout(ffn_(norm2_(x_w)), drop);
  return x.index_copy(1, workers, x_w.to(x.scalar_type()));
}

WorkerTransformer::WorkerTransformer(ModelConfig config) : LanguageModelImpl(std::move(config)) {
  const ModelConfig& c = config_;
  embed_ = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
  worker_type_ = register_parameter("worker_type", torch::randn({c.d_model}) * 0.02);
  rotary_ = register_module("rotary", RotaryTable(c.d_model / c.n_heads, c.seq_len));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) blocks_->push_back(WorkerBlock(c));
  norm_f_ = register_module("norm_f", RmsNorm(c.d_model));
  head_ = register_module(
      "head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
}

const WorkerTransformer::Layout& WorkerTransformer::GetLayout(int64_t seq_len, int64_t phase,
                                                              const torch::Device& device) {
  auto it = layouts_.find({seq_len, phase});
  if (it != layouts_.end() && it->second.workers.device() == device) return it->second;
  const std::vector<int64_t> positions = WorkerPositions(seq_len, config_.worker_interval, phase);
  Layout layout;
  layout.workers = torch::tensor(positions, torch::kInt64);
  layout.is_worker = torch::zeros({seq_len}, torch::kBool).index_fill(0, layout.workers, true);
  layout.key_mask =
      torch::arange(seq_len, torch::kInt64).unsqueeze(0) <= layout.workers.unsqueeze(1);
  layout.workers = layout.workers.to(device);
  layout.is_worker = layout.is_worker.to(device);
  layout.key_mask = layout.key_mask.to(device);
  return layouts_[{seq_len, phase}] = std::move(layout);
}

torch::Tensor WorkerTransformer::TrainPositions(int64_t seq_len, int64_t phase) const {
  TORCH_CHECK(phase >= 0 && phase < config_.worker_interval, "worker phase ", phase,
              " outside [0, ", config_.worker_interval, ")");
  const std::vector<int64_t> positions = WorkerPositions(seq_len, config_.worker_interval, phase);
  return torch::zeros({seq_len}, torch::kBool)
      .index_fill(0, torch::tensor(positions, torch::kInt64), true);
}

ModelOutput WorkerTransformer::Forward(const torch::Tensor& tokens, int64_t phase) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  TORCH_CHECK(phase >= 0 && phase < config_.worker_interval, "worker phase ", phase,
              " outside [0, ", config_.worker_interval, ")");
  const int64_t seq_len = tokens.size(1);
  const Layout& layout = GetLayout(seq_len, phase, tokens.device());
  const auto [cos, sin] = rotary_->Prefix(seq_len);
  const auto [cos_w, sin_w] = rotary_->At(layout.workers);

  torch::Tensor x =
      embed_(tokens) + layout.is_worker.unsqueeze(-1).to(worker_type_.scalar_type()) * worker_type_;
  for (const auto& block : *blocks_) {
    x = block->as<WorkerBlock>()->forward(x, layout.workers, layout.key_mask, cos, sin, cos_w,
                                          sin_w);
  }
  ModelOutput out;
  out.logits = head_(norm_f_(x));
  out.train_positions = layout.is_worker;
  out.aux_loss = torch::zeros({}, tokens.options().dtype(torch::kFloat32));
  return out;
}

double WorkerTransformer::TrainingFlopsPerToken(int64_t seq_len) const {
  const ModelConfig& c = config_;
  const double d = c.d_model;
  const double share =
      static_cast<double>(WorkerPositions(seq_len, c.worker_interval, 0).size()) / seq_len;
  const double all_tokens = TrainingMatmulFlops(2.0 * d * d + c.worker_conv_kernel * d);
  const double workers_only =
      TrainingMatmulFlops(3.0 * d * d + 2.0 * d * c.d_ff) + TrainingAttentionFlops(d, seq_len);
  return c.n_layers * (all_tokens + share * workers_only) + TrainingMatmulFlops(d * c.vocab_size);
}

}  // namespace gauntlet
