#ifndef GAUNTLET_TRAINER_KERNELS_RMS_NORM_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_RMS_NORM_CUDA_H_

// Launchers of the fused (residual-add +) RMSNorm kernels (rms_norm.cu). Raw pointers, row-major
// contiguous (rows, d) tensors, fp32 statistics. Each returns the launch error
// (cudaErrorInvalidValue for an unsupported combination of dtypes).

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// Element types of one call. The residual stream (x, sum, w, the residual gradient and dx) is
// `stream`; the added branch and its gradient are `delta`; the normalised output and its gradient
// are `out`. Supported: all three equal, or a float32 stream with bf16 delta and/or output (a
// float32 stream under bf16 autocast: the branch arrives in bf16 and the GEMM after the norm
// wants bf16, so neither needs a cast pass of its own).
struct RmsNormTypes {
  Dtype stream;
  Dtype delta;
  Dtype out;
};

bool RmsNormTypesSupported(const RmsNormTypes& types);

// sum = x + delta (in fp32, rounded to the stream type) when delta is non-null, written to
// `sum`; then y = sum * rsqrt(mean(sum^2) + eps) * w rounded once to the output type, and
// rstd[row] = that rsqrt (fp32). With delta null, `sum` is ignored and x is normalised.
cudaError_t RmsNormForward(const RmsNormTypes& types, const void* x, const void* delta,
                           const void* w, void* sum, void* y, float* rstd, int64_t rows,
                           int64_t d, float eps, cudaStream_t stream);

// Floats of scratch RmsNormBackward needs for its deterministic weight-gradient reduction.
int64_t RmsNormBackwardScratch(int64_t rows, int64_t d);

// Given dy (grad of y), x (the normalised input: the sum when fused), w and rstd from the
// forward: dx = rstd * dy * w - x * rstd^3 * mean(dy * w * x) (+ dresidual when non-null, the
// grad flowing into the sum output), and dw = sum over rows of dy * x * rstd in the stream type.
// When `ddelta` is non-null the same dx is also written there in the delta type (the branch's
// gradient, when its type differs from the stream's). `scratch` holds
// RmsNormBackwardScratch(rows, d) floats.
cudaError_t RmsNormBackward(const RmsNormTypes& types, const void* dy, const void* dresidual,
                            const void* x, const void* w, const float* rstd, void* dx,
                            void* ddelta, void* dw, float* scratch, int64_t rows, int64_t d,
                            cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_RMS_NORM_CUDA_H_
