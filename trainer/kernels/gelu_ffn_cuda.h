#ifndef GAUNTLET_TRAINER_KERNELS_GELU_FFN_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_GELU_FFN_CUDA_H_

// Launchers of the feed-forward block's memory-bound backward passes (gelu_ffn.cu): the bias
// gradients as deterministic column sums, the second fused with GELU's backward. Raw pointers,
// fp32 math. Each returns the launch error.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// Floats of scratch the column sums below need for a (rows, cols) input.
int64_t ColumnSumScratchFloats(int64_t rows, int64_t cols);

// sum[c] = sum over rows of x[r, c] for a contiguous (rows, cols) x, in fp32 and a fixed order.
cudaError_t ColumnSum(Dtype dtype, const void* x, float* scratch, float* sum, int64_t rows,
                      int64_t cols, cudaStream_t stream);

// dpre = dact * gelu'(pre) (exact, erf GELU) for contiguous (rows, cols) tensors of one dtype,
// and sum[c] = sum over rows of dpre[r, c] (before rounding to the dtype), in one pass over the
// rows plus a fixed-order sum of per-block partials.
cudaError_t GeluBackwardColumnSum(Dtype dtype, const void* dact, const void* pre, void* dpre,
                                  float* scratch, float* sum, int64_t rows, int64_t cols,
                                  cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_GELU_FFN_CUDA_H_
