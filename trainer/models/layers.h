#ifndef GAUNTLET_TRAINER_MODELS_LAYERS_H_
#define GAUNTLET_TRAINER_MODELS_LAYERS_H_

// Building blocks shared by the architectures (docs/ARCHITECTURES.md). Every module keeps
// PyTorch's default initialisation, as the seed repositories do.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "trainer/models/kv_cache.h"

namespace gauntlet {

// RMSNorm with a learnable scale (init 1) and eps = machine epsilon of the input dtype, which is
// torch.nn.RMSNorm's default and what the seeds use. The norm is computed in the input's dtype
// (the weight cast to it) and returned in GemmInputDtype(x): every consumer is a GEMM, which
// under autocast would cast it to bf16 anyway, so the value is the same and no cast pass runs.
class RmsNormImpl : public torch::nn::Module {
 public:
  explicit RmsNormImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);
  const torch::Tensor& weight() const { return weight_; }

 private:
  int64_t dim_;
  torch::Tensor weight_;
};
TORCH_MODULE(RmsNorm);

// cos/sin tables of interleaved RoPE: channel pair (2i, 2i+1) of a head rotates by angle
// t * base^(-2i / head_dim). The (max_len, head_dim / 2) fp32 buffers "cos"/"sin" follow the
// module to its device and are what checkpoints hold. The forward pass instead uses full-width
// tables in the rotate-half form (cos repeated per pair, sin with the even lane negated), so a
// rotation is two multiplies and one add (trainer/kernels/rotary.h); they are derived once per (device, dtype) and cached,
// so no forward builds or casts a table.
class RotaryTableImpl : public torch::nn::Module {
 public:
  RotaryTableImpl(int64_t head_dim, int64_t max_len, double base = 10000.0);
  // Full-width tables for positions 0..len-1 in `dtype`: each (len, head_dim).
  std::pair<torch::Tensor, torch::Tensor> Prefix(int64_t len, torch::ScalarType dtype) const;
  // Full-width tables at arbitrary positions (int64 on the module's device, any shape P), in
  // `dtype`: each P + (head_dim).
  std::pair<torch::Tensor, torch::Tensor> At(const torch::Tensor& positions,
                                             torch::ScalarType dtype) const;
  int64_t max_len() const { return max_len_; }

 private:
  const std::pair<torch::Tensor, torch::Tensor>& Full(torch::ScalarType dtype) const;

  int64_t max_len_;
  torch::Tensor cos_;
  torch::Tensor sin_;
  // (device, dtype) -> (cos, signed sin), each (max_len, head_dim). Derived from the buffers.
  mutable std::map<std::pair<std::string, torch::ScalarType>,
                   std::pair<torch::Tensor, torch::Tensor>>
      full_;
};
TORCH_MODULE(RotaryTable);

// The dtype activations feeding attention have on `device`: the autocast dtype when autocast is
// on for its device type, else float32. Tables fetched in it need no cast in the layers.
torch::ScalarType ComputeDtype(const torch::Device& device);

// layer(x) through at::linear. torch::nn::Linear's own forward adds the bias in a separate
// `+=` for inputs of more than two axes, which under autocast is a float32 bias broadcast into a
// bf16 product: a full non-vectorised pass over the output. at::linear folds the batch axes and
// adds the bias in the GEMM's epilogue (cuBLASLt), with autocast casting the bias like the weight.
torch::Tensor ApplyLinear(const torch::nn::LinearImpl& layer, const torch::Tensor& x);

// fc2(gelu(fc1(x))) with both biases, through the fused feed-forward op (kernels/gelu_ffn.h):
// the bias gradients as fast deterministic column sums, GELU's backward fused into the first.
torch::Tensor ApplyGeluFfn(const torch::nn::LinearImpl& fc1, const torch::nn::LinearImpl& fc2,
                           const torch::Tensor& x);

// The dtype a GEMM consumes `x` in: the autocast dtype when autocast is on for x's device type,
// else x's own. Norms hand their outputs to GEMMs in it.
torch::ScalarType GemmInputDtype(const torch::Tensor& x);

// Splits (B, T, h * d_h) into heads (B, h, T, d_h), and merges back.
torch::Tensor SplitHeads(const torch::Tensor& x, int64_t n_heads);
torch::Tensor MergeHeads(const torch::Tensor& x);

// Causal multi-head self-attention with the elementwise sigmoid output gate (gated attention,
// position G1): out = (SDPA(RoPE(Q), RoPE(K), V) * sigmoid(h W_g)) W_O. One fused bias-free
// projection W_qkv (d -> 3d, rows ordered Q | K | V, heads contiguous inside each); W_g, W_O
// bias-free. Attention dropout acts on the probabilities, inside SDPA.
class GatedSelfAttentionImpl : public torch::nn::Module {
 public:
  GatedSelfAttentionImpl(int64_t d_model, int64_t n_heads, double dropout);
  // h: (B, T, d), already normalised. cos/sin: full-width RoPE tables (RotaryTable), either
  // (T, d_h) for positions 0..T-1 or (B, T, d_h) for per-row positions. Causal over the T axis
  // (is_causal, so flash attention is eligible on GPU). Q and K are rotated in one pass.
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& cos, const torch::Tensor& sin);
  // forward for n tokens appended to a KV cache (eval only): h (B, n, d), cos/sin (n, d_h) or
  // (B, n, d_h) at their positions; `attend` reads and extends the cache.
  torch::Tensor ForwardCached(const torch::Tensor& h, const torch::Tensor& cos,
                              const torch::Tensor& sin, const CachedAttend& attend);

 private:
  int64_t n_heads_;
  double dropout_;
  torch::nn::Linear qkv_{nullptr};
  torch::nn::Linear gate_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(GatedSelfAttention);

// W_2 GELU(W_1 x + b_1) + b_2 with exact (erf) GELU.
class GeluFfnImpl : public torch::nn::Module {
 public:
  GeluFfnImpl(int64_t d_model, int64_t d_hidden);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear fc1_{nullptr};
  torch::nn::Linear fc2_{nullptr};
};
TORCH_MODULE(GeluFfn);

// The standard pre-norm block: x + Drop(Attn(RMSNorm_1(x))), then + Drop(FFN(RMSNorm_2(.))).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t d_model, int64_t n_heads, int64_t d_ff, double dropout);
  // x: (B, T, d); cos/sin as GatedSelfAttention takes them. Returns x + Delta(x).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
  // What the block adds to its input (both residual branches), for callers that scale it.
  torch::Tensor Delta(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
  // forward and Delta for tokens appended to a KV cache (eval only; see GatedSelfAttention).
  torch::Tensor ForwardCached(const torch::Tensor& x, const torch::Tensor& cos,
                              const torch::Tensor& sin, const CachedAttend& attend);
  torch::Tensor DeltaCached(const torch::Tensor& x, const torch::Tensor& cos,
                            const torch::Tensor& sin, const CachedAttend& attend);

 private:
  double dropout_;
  RmsNorm norm1_{nullptr};
  GatedSelfAttention attn_{nullptr};
  RmsNorm norm2_{nullptr};
  GeluFfn ffn_{nullptr};
};
TORCH_MODULE(TransformerBlock);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_LAYERS_H_
