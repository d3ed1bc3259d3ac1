#include "trainer/models/mixer_block.h"

#include <torch/torch.h>

#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/rms_norm.h"

namespace gauntlet {

namespace F = torch::nn::functional;

StaticMlpImpl::StaticMlpImpl(int64_t d_model, int64_t ratio) {
  a_ = register_module("a", torch::nn::Linear(d_model, ratio * d_model));
  b_ = register_module("b", torch::nn::Linear(ratio * d_model, d_model));
}

torch::Tensor StaticMlpImpl::forward(const torch::Tensor& x) {
  return ApplyGeluFfn(*a_, *b_, x);
}

MixerBlockImpl::MixerBlockImpl(const ModelConfig& c, const std::string& mixer)
    : dropout_(c.dropout) {
  if (mixer == "worker") {
    // The whole layer is the worker's (its own norms and FFN, at the workers only).
    kind_ = Kind::kWorker;
    worker_ = register_module("worker", WorkerBlock(c));
    return;
  }
  if (mixer != "none") norm1_ = register_module("norm1", RmsNorm(c.d_model));
  if (mixer == "attn") {
    kind_ = Kind::kAttn;
    attn_ = register_module("attn", GatedSelfAttention(c.d_model, c.n_heads, c.dropout));
  } else if (mixer == "sliced_attn") {
    kind_ = Kind::kSlicedAttn;
    sliced_ =
        register_module("attn", SlicedSelfAttention(c.d_model, c.n_heads, c.slice_len, c.dropout));
  } else if (mixer == "sqa") {
    kind_ = Kind::kSqa;
    sqa_ = register_module("sqa", SparseQueryAttention(c.d_model, c.n_heads, c.sqa_q_heads,
                                                       c.sqa_kv_heads, c.dropout));
  } else if (mixer == "static_mlp") {
    kind_ = Kind::kStaticMlp;
    static_mlp_ = register_module("static_mlp", StaticMlp(c.d_model, c.hybrid_static_mlp_ratio));
  } else {
    TORCH_CHECK(mixer == "none", "unknown mixer '", mixer, "'");
    kind_ = Kind::kNone;
  }
  norm2_ = register_module("norm2", RmsNorm(c.d_model));
  ffn_ = register_module("ffn", NestedGeluFfn(c.d_model, c.d_ff));
}

torch::Tensor MixerBlockImpl::Mix(const torch::Tensor& h, const torch::Tensor& cos,
                                  const torch::Tensor& sin) {
  switch (kind_) {
    case Kind::kAttn:
      return attn_(h, cos, sin);
    case Kind::kSlicedAttn:
      return sliced_(h, cos, sin);
    case Kind::kSqa:
      return sqa_(h, cos, sin);
    default:
      return static_mlp_(h);
  }
}

torch::Tensor MixerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                      const torch::Tensor& sin, int64_t ffn_width,
                                      const torch::Tensor& ffn_units) {
  TORCH_CHECK(kind_ != Kind::kWorker, "a worker layer runs through ForwardWorker");
  const auto drop = F::DropoutFuncOptions().p(dropout_).training(is_training());
  auto ffn = [&](const torch::Tensor& h) {
    return ffn_units.defined() ? ffn_->ForwardMasked(h, ffn_units) : ffn_(h, ffn_width);
  };
  if (kind_ == Kind::kNone) return kernels::ResidualAdd(x, F::dropout(ffn(norm2_(x)), drop));
  // The residual add and the second norm in one pass; the stream keeps its dtype and the
  // branches join it without a cast pass (as TransformerBlock).
  const kernels::AddRmsNormResult mid = kernels::AddRmsNorm(
      x, F::dropout(Mix(norm1_(x), cos, sin), drop), norm2_->weight(), GemmInputDtype(x));
  return kernels::ResidualAdd(mid.sum, F::dropout(ffn(mid.normed), drop));
}

torch::Tensor MixerBlockImpl::ForwardWorker(const torch::Tensor& x, const WorkerInputs& in,
                                            int64_t ffn_width, const torch::Tensor& ffn_units) {
  TORCH_CHECK(kind_ == Kind::kWorker, "ForwardWorker: not a worker layer");
  return worker_->forward(x, *in.layout, in.bias, in.cos, in.sin, in.cos_w, in.sin_w, ffn_width,
                          ffn_units);
}

bool MixerBlockImpl::HasAttention() const {
  return kind_ == Kind::kAttn || kind_ == Kind::kSlicedAttn || kind_ == Kind::kSqa;
}

torch::Tensor MixerBlockImpl::AfterMixer(const torch::Tensor& x, const torch::Tensor& cos,
                                         const torch::Tensor& sin) {
  if (kind_ == Kind::kNone) return x;
  return x + Mix(norm1_(x), cos, sin).to(x.scalar_type());
}

torch::Tensor MixerBlockImpl::ForwardCached(const torch::Tensor& x, const torch::Tensor& cos,
                                            const torch::Tensor& sin, int64_t ffn_width,
                                            const CachedAttend& attend) {
  TORCH_CHECK(kind_ != Kind::kWorker, "worker layers have no KV-cache decoding in a layer stack");
  if (kind_ == Kind::kNone) return kernels::ResidualAdd(x, ffn_(norm2_(x), ffn_width));
  const torch::Tensor h = norm1_(x);
  torch::Tensor mixed;
  switch (kind_) {
    case Kind::kAttn:
      mixed = attn_->ForwardCached(h, cos, sin, attend);
      break;
    case Kind::kSlicedAttn:
      mixed = sliced_->ForwardCached(h, cos, sin, attend);
      break;
    case Kind::kSqa:
      mixed = sqa_->ForwardCached(h, cos, sin, attend);
      break;
    default:
      mixed = static_mlp_(h);
  }
  const kernels::AddRmsNormResult mid =
      kernels::AddRmsNorm(x, mixed, norm2_->weight(), GemmInputDtype(x));
  return kernels::ResidualAdd(mid.sum, ffn_(mid.normed, ffn_width));
}

}  // namespace gauntlet
