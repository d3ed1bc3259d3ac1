#ifndef GAUNTLET_TRAINER_KERNELS_ROTARY_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_ROTARY_CUDA_H_

// Launcher of the fused RoPE + head transpose kernel (rotary.cu).

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// Up to three "slots" (Q, K, V) of a (batch, seq, heads, head_dim) tensor each, moved from one
// layout to another while slots [0, rotated) are rotated by interleaved-pair RoPE:
//   out_2i   = x_2i * cos_2i + x_2i+1 * sin_2i * sin_sign
//   out_2i+1 = x_2i+1 * cos_2i+1 + x_2i * sin_2i+1 * sin_sign
// with full-width tables (cos repeated per pair, sin with the even lane negated), so
// sin_sign = -1 is the inverse rotation (the backward pass). Strides are in elements, for the
// (batch, seq, head) axes; head_dim is contiguous. A null input slot reads as zeros.
struct RotaryArgs {
  const void* in[3] = {nullptr, nullptr, nullptr};
  int64_t in_stride[3] = {0, 0, 0};
  void* out[3] = {nullptr, nullptr, nullptr};
  int64_t out_stride[3] = {0, 0, 0};
  int slots = 0;
  int rotated = 0;
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  // Tables: element (b, t, j) at b * table_batch_stride + t * table_seq_stride + j.
  const void* cos = nullptr;
  const void* sin = nullptr;
  int64_t table_batch_stride = 0;  // 0 when the tables are shared by the batch
  int64_t table_seq_stride = 0;
  float sin_sign = 1.f;
};

cudaError_t RotaryTranspose(Dtype dtype, const RotaryArgs& args, cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_ROTARY_CUDA_H_
