#ifndef GAUNTLET_TRAINER_KERNELS_RMS_NORM_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_RMS_NORM_CUDA_H_

// Launchers of the fused (residual-add +) RMSNorm kernels (rms_norm.cu). Raw pointers, row-major
// contiguous (rows, d) tensors of one dtype, fp32 statistics. Each returns the launch error.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// sum = x + delta (rounded to dtype) when delta is non-null, written to `sum`; then
// y = sum * rsqrt(mean(sum^2) + eps) * w, and rstd[row] = that rsqrt (fp32).
// With delta null, `sum` is ignored and x is normalised.
cudaError_t RmsNormForward(Dtype dtype, const void* x, const void* delta, const void* w,
                           void* sum, void* y, float* rstd, int64_t rows, int64_t d, float eps,
                           cudaStream_t stream);

// Floats of scratch RmsNormBackward needs for its deterministic weight-gradient reduction.
int64_t RmsNormBackwardScratch(int64_t rows, int64_t d);

// Given dy (grad of y), x (the normalised input: the sum when fused), w and rstd from the
// forward: dx = rstd * dy * w - x * rstd^3 * mean(dy * w * x) (+ dresidual when non-null, the
// grad flowing into the sum output), and dw = sum over rows of dy * x * rstd in w's dtype.
// `scratch` holds RmsNormBackwardScratch(rows, d) floats.
cudaError_t RmsNormBackward(Dtype dtype, const void* dy, const void* dresidual, const void* x,
                            const void* w, const float* rstd, void* dx, void* dw, float* scratch,
                            int64_t rows, int64_t d, cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_RMS_NORM_CUDA_H_
