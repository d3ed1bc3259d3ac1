#include "trainer/models/worker.h"

#include <torch/torch.h>

#include "trainer/kernels/causal_conv.h"
#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/rms_norm.h"
#include "trainer/kernels/rotary.h"

#include <limits>
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
  ffn_ = register_module("ffn", NestedGeluFfn(d, c.d_ff));
}

torch::Tensor WorkerLayout::Gather(const torch::Tensor& x) const {
  if (stride > 0) return x.slice(/*dim=*/1, first, x.size(1), stride);
  return x.index_select(1, workers);
}

torch::Tensor WorkerLayout::Scatter(const torch::Tensor& x, const torch::Tensor& x_w) const {
  const torch::Tensor rows = x_w.to(x.scalar_type());
  if (stride > 0) return x.slice_scatter(rows, /*dim=*/1, first, x.size(1), stride);
  return x.index_copy(1, workers, rows);
}

torch::Tensor WorkerBlockImpl::CausalConv(const torch::Tensor& x) {
  return kernels::CausalConv(x, conv_->weight, conv_->bias);
}

torch::Tensor WorkerBlockImpl::forward(const torch::Tensor& x, const WorkerLayout& layout,
                                       const torch::Tensor& bias, const torch::Tensor& cos,
                                       const torch::Tensor& sin, const torch::Tensor& cos_w,
                                       const torch::Tensor& sin_w, int64_t ffn_width,
                                       const torch::Tensor& ffn_units) {
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  const int64_t batch = x.size(0);
  const int64_t seq_len = x.size(1);
  const torch::Tensor h = norm1_(CausalConv(x));
  // (B, T, 2, heads, d_h) -> K rotated, K and V laid out (B, heads, T, d_h), in one pass.
  const std::vector<torch::Tensor> kv = kernels::RotaryTranspose(
      kv_(h).view({batch, seq_len, 2, n_heads_, -1}), cos, sin, /*rotated=*/1);
  const torch::Tensor& k = kv[0];
  const torch::Tensor& v = kv[1];

  // One contiguous copy for the two projections below (each would otherwise copy the strided
  // view itself), and one gradient accumulation before the gather's backward.
  const torch::Tensor h_w = layout.Gather(h).contiguous();
  const int64_t n_workers = h_w.size(1);
  const torch::Tensor q =
      kernels::RotaryHeads(q_(h_w).view({batch, n_workers, n_heads_, -1}), cos_w, sin_w);
  // Queries are a strided subset, so causality needs the explicit (T_w, T) bias.
  const torch::Tensor context = at::scaled_dot_product_attention(
      q, k, v, bias.to(q.scalar_type()), is_training() ? dropout_ : 0.0, /*is_causal=*/false);
  const torch::Tensor attn = out_(kernels::SigmoidGatedMerge(context, gate_(h_w)));

  // Residual on the raw stream at the workers only; everything else passes through unchanged.
  // The add and norm2 in one pass, the bf16 branches joining the stream without a cast pass.
  const kernels::AddRmsNormResult mid = kernels::AddRmsNorm(
      layout.Gather(x), F::dropout(attn, drop), norm2_->weight(), GemmInputDtype(x));
  const torch::Tensor hidden =
      ffn_units.defined()
          ? ffn_->ForwardMasked(mid.normed, ffn_units)
          : ffn_(mid.normed, ffn_width > 0 ? ffn_width : ffn_->d_hidden());
  const torch::Tensor x_w = kernels::ResidualAdd(mid.sum, F::dropout(hidden, drop));
  return layout.Scatter(x, x_w);
}

torch::Tensor WorkerBlockImpl::ForwardCached(const torch::Tensor& x, torch::Tensor& conv_tail,
                                             AttentionCache& cache, int64_t max_len,
                                             int64_t start, const torch::Tensor& workers,
                                             const torch::Tensor& cos, const torch::Tensor& sin,
                                             bool commit) {
  const int64_t batch = x.size(0);
  const int64_t m = x.size(1);
  const int64_t end = start + m;
  // The conv over the tail and the chunk equals the conv over the whole sequence at the chunk.
  const torch::Tensor with_tail = torch::cat({conv_tail, x}, 1);
  const torch::Tensor h = norm1_(CausalConv(with_tail).narrow(1, kernel_ - 1, m));
  if (commit) conv_tail = with_tail.narrow(1, m, kernel_ - 1).clone();
  const std::vector<torch::Tensor> kv = kernels::RotaryTranspose(
      kv_(h).view({batch, m, 2, n_heads_, -1}), cos, sin, /*rotated=*/1);
  if (!cache.k.defined()) {
    cache.k = torch::zeros({batch, n_heads_, max_len, kv[0].size(3)}, kv[0].options());
    cache.v = torch::zeros_like(cache.k);
  }
  cache.k.narrow(2, start, m).copy_(kv[0]);
  cache.v.narrow(2, start, m).copy_(kv[1]);
  const int64_t n_workers = workers.size(0);
  if (n_workers == 0) return x;

  const torch::Tensor h_w = h.index_select(1, workers);
  const torch::Tensor q = kernels::RotaryHeads(q_(h_w).view({batch, n_workers, n_heads_, -1}),
                                               cos.index_select(0, workers),
                                               sin.index_select(0, workers));
  const torch::Tensor query_pos = (workers + start).unsqueeze(1);
  const torch::Tensor key_pos = torch::arange(end, workers.options()).unsqueeze(0);
  const torch::Tensor context = at::scaled_dot_product_attention(
      q, cache.k.narrow(2, 0, end), cache.v.narrow(2, 0, end), key_pos <= query_pos,
      /*dropout_p=*/0.0, /*is_causal=*/false);
  const torch::Tensor attn = out_(kernels::SigmoidGatedMerge(context, gate_(h_w)));
  const kernels::AddRmsNormResult mid = kernels::AddRmsNorm(x.index_select(1, workers), attn,
                                                            norm2_->weight(), GemmInputDtype(x));
  const torch::Tensor x_w = kernels::ResidualAdd(mid.sum, ffn_(mid.normed, ffn_->d_hidden()));
  return x.index_copy(1, workers, x_w.to(x.scalar_type()));
}

WorkerTransformer::WorkerTransformer(ModelConfig config)
    : LanguageModelImpl(std::move(config)), layouts_(config_.worker_interval) {
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

WorkerLayout BuildWorkerLayout(int64_t seq_len, int64_t interval, int64_t phase,
                               const torch::Device& device) {
  const std::vector<int64_t> positions = WorkerPositions(seq_len, interval, phase);
  WorkerLayout layout;
  const torch::Tensor workers = torch::tensor(positions, torch::kInt64);
  const torch::Tensor is_worker = torch::zeros({seq_len}, torch::kBool).index_fill(0, workers, true);
  layout.workers = workers.to(device);
  layout.is_worker = is_worker.to(device);
  layout.indicator = is_worker.to(torch::kFloat32).unsqueeze(-1).to(device);
  bool regular = true;
  for (size_t i = 1; i < positions.size(); ++i) {
    regular = regular && positions[i] - positions[i - 1] == interval;
  }
  layout.first = positions.front();
  layout.stride = regular ? interval : 0;
  const torch::Tensor allowed =
      torch::arange(seq_len, torch::kInt64).unsqueeze(0) <= workers.unsqueeze(1);
  layout.bias[torch::kFloat32] =
      torch::zeros(allowed.sizes(), torch::kFloat32)
          .masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity())
          .to(device);
  return layout;
}

WorkerLayout& WorkerLayouts::Get(int64_t seq_len, int64_t phase, const torch::Device& device) {
  auto it = layouts_.find({seq_len, phase});
  if (it != layouts_.end() && it->second.workers.device() == device) return it->second;
  return layouts_[{seq_len, phase}] = BuildWorkerLayout(seq_len, interval_, phase, device);
}

WorkerInputs WorkerLayouts::Inputs(int64_t seq_len, int64_t phase, const torch::Device& device,
                                   torch::ScalarType dtype, const torch::Tensor& cos,
                                   const torch::Tensor& sin) {
  WorkerLayout& layout = Get(seq_len, phase, device);
  torch::Tensor& bias = layout.bias[dtype];
  if (!bias.defined()) bias = layout.bias.at(torch::kFloat32).to(dtype);
  WorkerInputs in;
  in.layout = &layout;
  in.bias = bias;
  in.cos = cos;
  in.sin = sin;
  in.cos_w = layout.Gather(cos.unsqueeze(0)).squeeze(0);
  in.sin_w = layout.Gather(sin.unsqueeze(0)).squeeze(0);
  return in;
}

torch::Tensor WorkerTransformer::TrainPositions(int64_t seq_len, int64_t phase) const {
  TORCH_CHECK(phase >= 0 && phase < config_.worker_interval, "worker phase ", phase,
              " outside [0, ", config_.worker_interval, ")");
  const std::vector<int64_t> positions = WorkerPositions(seq_len, config_.worker_interval, phase);
  return torch::zeros({seq_len}, torch::kBool)
      .index_fill(0, torch::tensor(positions, torch::kInt64), true);
}

ModelOutput WorkerTransformer::Run(const torch::Tensor& tokens, int64_t phase, Head head) {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  TORCH_CHECK(phase >= 0 && phase < config_.worker_interval, "worker phase ", phase,
              " outside [0, ", config_.worker_interval, ")");
  const int64_t seq_len = tokens.size(1);
  const torch::ScalarType dtype = ComputeDtype(tokens.device());
  const auto [cos, sin] = rotary_->Prefix(seq_len, dtype);
  const WorkerInputs in = layouts_.Inputs(seq_len, phase, tokens.device(), dtype, cos, sin);
  const WorkerLayout& layout = *in.layout;

  // The indicator in the parameters' dtype: a float32 one would promote a bf16 model's stream.
  torch::Tensor x =
      embed_(tokens) + layout.indicator.to(worker_type_.scalar_type()) * worker_type_;
  for (const auto& block : *blocks_) {
    x = block->as<WorkerBlock>()->forward(x, layout, in.bias, cos, sin, in.cos_w, in.sin_w);
  }
  ModelOutput out;
  if (head == Head::kHidden) {
    FinishHead(out, norm_f_(layout.Gather(x)), head_, head);
    out.hidden_positions = layout.workers;
  } else {
    FinishHead(out, norm_f_(x), head_, head);
  }
  out.train_positions = layout.is_worker;
  out.aux_loss = torch::zeros({}, tokens.options().dtype(torch::kFloat32));
  return out;
}

torch::Tensor WorkerTransformer::RunCached(KvCache& cache, const torch::Tensor& tokens,
                                          int64_t offset, bool last_is_worker, bool commit) {
  const ModelConfig& c = config_;
  const int64_t m = tokens.size(1);
  const int64_t start = cache.length + offset;
  const int64_t k = c.worker_interval;
  std::vector<int64_t> workers;
  for (int64_t i = 0; i < m; ++i) {
    if ((start + i + cache.phase) % k == k - 1 || (last_is_worker && i == m - 1)) {
      workers.push_back(i);
    }
  }
  const torch::Tensor worker_index =
      torch::tensor(workers, torch::kInt64).to(tokens.device());
  const torch::Tensor indicator = torch::zeros({m, 1}, worker_type_.options())
                                      .index_fill(0, worker_index, 1.0);
  const auto [cos_all, sin_all] = rotary_->Prefix(start + m, ComputeDtype(tokens.device()));
  const torch::Tensor cos = cos_all.narrow(0, start, m);
  const torch::Tensor sin = sin_all.narrow(0, start, m);
  torch::Tensor x = embed_(tokens) + indicator * worker_type_;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    x = blocks_[l]->as<WorkerBlock>()->ForwardCached(x, cache.state[l], cache.attention[l],
                                                      cache.max_len, start, worker_index, cos,
                                                      sin, commit);
  }
  return x;
}

torch::Tensor WorkerTransformer::ExtendCache(KvCache& cache, const torch::Tensor& tokens) {
  const ModelConfig& c = config_;
  const int64_t n = tokens.size(1);
  if (cache.state.empty()) {
    cache.attention.resize(c.n_layers);
    for (int64_t l = 0; l < c.n_layers; ++l) {
      cache.state.push_back(torch::zeros({cache.batch, c.worker_conv_kernel - 1, c.d_model},
                                         embed_->weight.options()));
    }
  }
  // Every token but the last as it stays once more follow, then the last one.
  if (n > 1) RunCached(cache, tokens.narrow(1, 0, n - 1), 0, /*last_is_worker=*/false, true);
  const torch::Tensor last = tokens.narrow(1, n - 1, 1);
  const int64_t t = cache.length + n - 1;
  const bool true_worker = (t + cache.phase) % c.worker_interval == c.worker_interval - 1;
  torch::Tensor x;
  if (true_worker) {
    x = RunCached(cache, last, n - 1, /*last_is_worker=*/true, /*commit=*/true);
  } else {
    // As the window's last position it is a worker; its committed entry (no update, no
    // worker-type embedding) then overwrites what that pass wrote in the cache.
    x = RunCached(cache, last, n - 1, /*last_is_worker=*/true, /*commit=*/false);
    RunCached(cache, last, n - 1, /*last_is_worker=*/false, /*commit=*/true);
  }
  return head_(norm_f_(x.select(1, 0)));
}

}  // namespace gauntlet
