#ifndef GAUNTLET_TRAINER_KERNELS_CROSS_ENTROPY_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_CROSS_ENTROPY_CUDA_H_

// Launcher of the per-row softmax cross-entropy kernel (cross_entropy.cu) that the chunked
// LM-head loss runs on each chunk of logits.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// For each of `rows` rows of `logits` (row stride `ld` elements, `vocab` columns), with
// lse = logsumexp(row) in fp32 and w = row_weights[row]:
//   loss[row] = w * (lse - row[targets[row]])   (0 when w == 0; NaN for a target outside
//                                                [0, vocab), so bad targets cannot pass silently)
// and, when write_grad, overwrites the row in place with w * (softmax(row) - onehot(target)).
cudaError_t SoftmaxCrossEntropyRows(Dtype dtype, void* logits, int64_t ld, const int64_t* targets,
                                    const float* row_weights, float* loss, int64_t rows,
                                    int64_t vocab, bool write_grad, cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_CROSS_ENTROPY_CUDA_H_
