#include "trainer/models/standard.h"

#include <torch/torch.h>

#include <utility>

#include "trainer/models/layers.h"

namespace gauntlet {

StandardTransformer::StandardTransformer(ModelConfig config) : TrunkTransformer(std::move(config)) {
  const ModelConfig& c = config_;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    TransformerBlock block(c.d_model, c.n_heads, c.d_ff, c.dropout);
    AddBlock(block.ptr(),
             [block](const torch::Tensor& x, const torch::Tensor& cos,
                     const torch::Tensor& sin) mutable { return block->forward(x, cos, sin); },
             [block](const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                     const CachedAttend& attend) mutable {
               return block->ForwardCached(x, cos, sin, attend);
             });
  }
}

}  // namespace gauntlet
