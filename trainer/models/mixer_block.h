#ifndef GAUNTLET_TRAINER_MODELS_MIXER_BLOCK_H_
#define GAUNTLET_TRAINER_MODELS_MIXER_BLOCK_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "common/model_config.h"
#include "trainer/models/layers.h"
#include "trainer/models/nested_ffn.h"
#include "trainer/models/sliced_attention.h"
#include "trainer/models/sparse_query_attention.h"
#include "trainer/models/worker.h"

namespace gauntlet {

// A per-token MLP in place of token mixing (hybrid's static MLP as a mixer):
// b(GELU(a(x))), hidden width ratio * d, with biases. Parameters: a.{weight,bias}, b.{weight,bias}.
class StaticMlpImpl : public torch::nn::Module {
 public:
  StaticMlpImpl(int64_t d_model, int64_t ratio);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear a_{nullptr};
  torch::nn::Linear b_{nullptr};
};
TORCH_MODULE(StaticMlp);

// One layer of the layer-stack archs (docs/ARCHITECTURES.md "Layer stack"): a pre-norm token
// mixer chosen by name (common/model_config.h Mixers()), then the pre-norm nested GELU FFN:
//   y = x + Drop(Mixer(RMSNorm_1(x)));  out = y + Drop(FFN_m(RMSNorm_2(y))).
// Mixer "none" has no sub-layer and no norm1 (attention drop): y = x. With mixer "attn" and
// m = d_ff this is TransformerBlock exactly. Every mixer is causal and row-local.
// Mixer "worker" is the whole InplaceWorkerTransformer layer instead (trainer/models/worker.h:
// conv, attention and FFN at the workers only, its own norms), run by ForwardWorker.
// Parameters: norm1.weight (unless "none"), then attn.* ("attn", "sliced_attn"), sqa.*,
// static_mlp.*; norm2.weight, ffn.{fc1,fc2}.{weight,bias}; for "worker" only worker.*
// (WorkerBlock's).
class MixerBlockImpl : public torch::nn::Module {
 public:
  MixerBlockImpl(const ModelConfig& config, const std::string& mixer);
  // x: (B, T, d); cos/sin: (T, d_h) RoPE tables; ffn_width: hidden units of the FFN to use, or,
  // when ffn_units is defined, the FFN's hidden-unit mask (NestedGeluFfn::ForwardMasked).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        int64_t ffn_width, const torch::Tensor& ffn_units = {});
  // forward for tokens appended to a KV cache (eval only); `attend` is bound to this layer's
  // cache entry (unused unless HasAttention()).
  torch::Tensor ForwardCached(const torch::Tensor& x, const torch::Tensor& cos,
                              const torch::Tensor& sin, int64_t ffn_width,
                              const CachedAttend& attend);
  // A worker layer ("worker") on the pass's worker inputs; FFN width or unit mask as forward.
  torch::Tensor ForwardWorker(const torch::Tensor& x, const WorkerInputs& in, int64_t ffn_width,
                              const torch::Tensor& ffn_units = {});
  bool IsWorker() const { return kind_ == Kind::kWorker; }
  // Whether the mixer is an attention ("attn", "sqa", "sliced_attn"); not "worker", which
  // attention drop leaves alone.
  bool HasAttention() const;
  // Makes this layer mixer "none" from now on (post-hoc attention drop); the mixer's and norm1's
  // parameters stay registered, unused.
  void DropMixer() { kind_ = Kind::kNone; }
  // x + Mixer(RMSNorm_1(x)) without dropout: the stream after the mixer sub-layer, for scoring it.
  torch::Tensor AfterMixer(const torch::Tensor& x, const torch::Tensor& cos,
                           const torch::Tensor& sin);

 private:
  // The mixer on its normalised input (not for kNone).
  torch::Tensor Mix(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin);

  enum class Kind { kAttn, kSlicedAttn, kSqa, kStaticMlp, kNone, kWorker };
  Kind kind_;
  double dropout_;
  RmsNorm norm1_{nullptr};
  GatedSelfAttention attn_{nullptr};
  SlicedSelfAttention sliced_{nullptr};
  SparseQueryAttention sqa_{nullptr};
  StaticMlp static_mlp_{nullptr};
  RmsNorm norm2_{nullptr};
  NestedGeluFfn ffn_{nullptr};
  WorkerBlock worker_{nullptr};
};
TORCH_MODULE(MixerBlock);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_MIXER_BLOCK_H_
