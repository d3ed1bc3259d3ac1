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

void TrunkTransformer::AddBlock(std::shared_ptr<torch::nn::Module> block, BlockFn run) {
  blocks_->push_back(std::move(block));
  block_fns_.push_back(std::move(run));
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
