#ifndef GAUNTLET_TRAINER_KERNELS_ROTARY_H_
#define GAUNTLET_TRAINER_KERNELS_ROTARY_H_

// Interleaved-pair RoPE fused with the head transpose attention needs, as a differentiable op.
// On a GPU in a CUDA build (fp32/bf16) it runs rotary.cu (one read, one write per element);
// otherwise the ATen composite, with the same semantics.
//
// Tables are the full-width ones of trainer/models RotaryTable (cos repeated per pair, sin with
// the even lane negated): out = x * cos + pair_swap(x) * sin, per head. They are cast to x's
// dtype and get no gradient.

#include <torch/torch.h>

#include <vector>

namespace gauntlet::kernels {

// x: (B, T, S, H, Dh) with S <= 3 slots (e.g. the fused QKV projection viewed as
// (B, T, 3, H, Dh)); any strides as long as Dh is contiguous. cos/sin: (T, Dh) shared by the
// batch, or (B, T, Dh) per row (last axis contiguous). Returns S contiguous (B, H, T, Dh)
// tensors; slots [0, rotated) are rotated, the rest only transposed.
std::vector<torch::Tensor> RotaryTranspose(const torch::Tensor& x, const torch::Tensor& cos,
                                           const torch::Tensor& sin, int64_t rotated);

struct QkvHeads {
  torch::Tensor q, k, v;  // each (B, H, T, Dh) contiguous
};

// The attention layer's case: qkv (B, T, 3, H, Dh); Q and K rotated, V transposed.
QkvHeads RotaryQkv(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin);

// One rotated tensor (the worker arch's Q or K): x (B, T, H, Dh) -> (B, H, T, Dh).
torch::Tensor RotaryHeads(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

// The ATen composite (what runs on CPU); exposed for tests and benchmarks.
std::vector<torch::Tensor> RotaryTransposeReference(const torch::Tensor& x,
                                                    const torch::Tensor& cos,
                                                    const torch::Tensor& sin, int64_t rotated);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_ROTARY_H_
