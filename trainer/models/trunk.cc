#include "trainer/models/trunk.h"

#include <torch/torch.h>

#include <utility>

namespace gauntlet {

TrunkTransformer::TrunkTransformer(ModelConfig config) : LanguageModelImpl(std::move(config)) {
  const ModelConfig& c = config_;
  embed_ = register_module("embed", torch::nn::Embedding(c.vocab_size, c.d_model));
  rotary_ = register_module("rotary", RotaryTable(c.d_model / c.n_heads, c.seq_len));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  norm_f_ = register_module("norm_f", RmsNorm(c.d_model));
  head_ = register_module(
      "head", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.vocab_size).bias(false)));
}

void TrunkTransformer::AddBlock(std::shared_ptr<torch::nn::Module> block, BlockFn run,
                                CachedBlockFn cached) {
  blocks_->push_back(std::move(block));
  block_fns_.push_back(std::move(run));
  cached_fns_.push_back(std::move(cached));
}

bool TrunkTransformer::SupportsKvCache() const {
  for (const CachedBlockFn& fn : cached_fns_) {
    if (!fn) return false;
  }
  return true;
}

std::pair<torch::Tensor, torch::Tensor> TrunkTransformer::CacheTables(
    const KvCache& cache, const torch::Tensor& tokens) const {
  if (cache.position.defined()) return rotary_->At(cache.position, ComputeDtype(tokens.device()));
  const auto [cos, sin] =
      rotary_->Prefix(cache.length + tokens.size(1), ComputeDtype(tokens.device()));
  return {cos.narrow(0, cache.length, tokens.size(1)), sin.narrow(0, cache.length, tokens.size(1))};
}

torch::Tensor TrunkTransformer::LastLogits(const torch::Tensor& x) {
  return head_(norm_f_(x.select(1, x.size(1) - 1)));
}

torch::Tensor TrunkTransformer::ExtendCache(KvCache& cache, const torch::Tensor& tokens) {
  TORCH_CHECK(SupportsKvCache(), "arch ", config_.arch, " has no KV-cache decoding");
  const auto [cos, sin] = CacheTables(cache, tokens);
  cache.attention.resize(cached_fns_.size());
  torch::Tensor x = embed_(tokens);
  for (size_t i = 0; i < cached_fns_.size(); ++i) {
    x = cached_fns_[i](x, cos, sin, BindAttention(cache.attention[i], cache));
  }
  return LastLogits(x);
}

torch::Tensor TrunkTransformer::RunBlocks(torch::Tensor x, const torch::Tensor& cos,
                                          const torch::Tensor& sin) {
  for (const BlockFn& run : block_fns_) x = run(x, cos, sin);
  return x;
}

std::pair<torch::Tensor, torch::Tensor> TrunkTransformer::Tables(
    const torch::Tensor& tokens) const {
  TORCH_CHECK(tokens.dim() == 2, "tokens must be (B, T), got ", tokens.sizes());
  return rotary_->Prefix(tokens.size(1), ComputeDtype(tokens.device()));
}

void TrunkTransformer::Finish(ModelOutput& out, const torch::Tensor& x, Head head) {
  FinishHead(out, norm_f_->forward(x), head_, head);
  out.train_positions = torch::ones({x.size(1)}, x.options().dtype(torch::kBool));
  out.aux_loss = torch::zeros({}, x.options().dtype(torch::kFloat32));
}

ModelOutput TrunkTransformer::Run(const torch::Tensor& tokens, int64_t /*phase*/, Head head) {
  const auto [cos, sin] = Tables(tokens);
  ModelOutput out;
  Finish(out, RunBlocks(embed_(tokens), cos, sin), head);
  return out;
}

}  // namespace gauntlet
