#ifndef GAUNTLET_TRAINER_MODELS_TRUNK_H_
#define GAUNTLET_TRAINER_MODELS_TRUNK_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/model_config.h"
#include "trainer/models/layers.h"
#include "trainer/models/model.h"

namespace gauntlet {

// What every token-stream architecture shares (docs/ARCHITECTURES.md "The trunk"): the token
// embedding (no absolute positions), the RoPE table, a list of blocks, the final RMSNorm and the
// untied bias-free head, and the forward loop embed -> blocks -> norm -> head. An architecture
// derives from it, appends its blocks in its constructor with AddBlock and, if its blocks do not
// simply run in order, overrides RunBlocks (or Run, for a training pass of its own).
// Parameters: embed.weight, blocks.{i}.*, norm_f.weight, head.weight (plus the arch's own).
class TrunkTransformer : public LanguageModelImpl {
 protected:
  // Applies one block to the residual stream x (B, T, d) with full-width RoPE tables cos/sin
  // (T, d_h) for positions 0..T-1.
  using BlockFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& cos,
                                              const torch::Tensor& sin)>;

  // Registers embed, rotary, blocks (empty), norm_f and head, in that order. RoPE tables have
  // head width d_model / n_heads and cover seq_len positions.
  explicit TrunkTransformer(ModelConfig config);

  // Applies one block to tokens appended to a KV cache: x (B, n, d), cos/sin (n, d_h) at their
  // positions, `attend` bound to the block's cache entry (unused by blocks without attention).
  using CachedBlockFn =
      std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& cos,
                                  const torch::Tensor& sin, const CachedAttend& attend)>;

  // Appends `block` as blocks.{i}; RunBlocks applies it with `run`, ExtendCache with `cached`
  // (null: the model has no KV-cache decoding).
  void AddBlock(std::shared_ptr<torch::nn::Module> block, BlockFn run,
                CachedBlockFn cached = nullptr);

  // KV-cache decoding through the blocks in order, cache.attention[i] for block i; archs whose
  // Run is their own override both.
  bool SupportsKvCache() const override;
  bool SupportsStaticDecode() const override { return SupportsKvCache(); }
  torch::Tensor ExtendCache(KvCache& cache, const torch::Tensor& tokens) override;
  // RoPE tables (n, d_h) for the n tokens ExtendCache appends at cache.length (at
  // cache.position in a static step).
  std::pair<torch::Tensor, torch::Tensor> CacheTables(const KvCache& cache,
                                                      const torch::Tensor& tokens) const;
  // The logits (B, V) at the last position of the final residual stream x (B, n, d).
  torch::Tensor LastLogits(const torch::Tensor& x);

  // The blocks in order on x = embed(tokens). Every block must be causal (output t reads only
  // inputs <= t) and row-local; the trunk adds nothing that mixes tokens or rows.
  virtual torch::Tensor RunBlocks(torch::Tensor x, const torch::Tensor& cos,
                                  const torch::Tensor& sin);

  // embed -> RunBlocks -> norm_f -> head (all positions trained).
  ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head head) override;

  // Checks tokens is (B, T) and returns the RoPE tables for positions 0..T-1 in the compute dtype.
  std::pair<torch::Tensor, torch::Tensor> Tables(const torch::Tensor& tokens) const;
  // Fills `out` from the final residual stream x (B, T, d): head or hidden states, every
  // position trained, zero aux loss.
  void Finish(ModelOutput& out, const torch::Tensor& x, Head head);

  torch::nn::Embedding embed_{nullptr};
  RotaryTable rotary_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  RmsNorm norm_f_{nullptr};
  torch::nn::Linear head_{nullptr};

 private:
  std::vector<BlockFn> block_fns_;
  std::vector<CachedBlockFn> cached_fns_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_TRUNK_H_
