#ifndef GAUNTLET_TRAINER_KERNELS_CAUSAL_CONV_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_CAUSAL_CONV_CUDA_H_

// Launchers of the causal depthwise convolution kernels (causal_conv.cu). x, out, g and dx are
// contiguous (batch, seq, d) in `dtype`; taps are float32 (kernel, d) (tap j of channel c at
// j * d + c), bias float32 (d). Each returns the launch error (cudaErrorInvalidValue for a kernel
// width outside [1, kMaxCausalConvWidth]).

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

constexpr int kMaxCausalConvWidth = 8;

struct CausalConvShape {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t d = 0;
  int kernel = 0;
};

// out[b, t, c] = bias[c] + sum_j taps[j, c] * x[b, t - (kernel - 1) + j, c], zero before t = 0.
cudaError_t CausalConvForward(Dtype dtype, const CausalConvShape& shape, const void* x,
                              const float* taps, const float* bias, void* out,
                              cudaStream_t stream);

// Floats of scratch CausalConvBackward needs for its deterministic tap/bias reduction.
int64_t CausalConvBackwardScratch(const CausalConvShape& shape);

// Given g = dL/dout: dx (in dtype), dtaps (float32, (kernel, d)) and dbias (float32, (d)).
cudaError_t CausalConvBackward(Dtype dtype, const CausalConvShape& shape, const void* g,
                               const void* x, const float* taps, void* dx, float* dtaps,
                               float* dbias, float* scratch, cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_CAUSAL_CONV_CUDA_H_
