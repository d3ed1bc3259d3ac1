#ifndef GAUNTLET_TRAINER_KERNELS_ELEMENTWISE_CUDA_H_
#define GAUNTLET_TRAINER_KERNELS_ELEMENTWISE_CUDA_H_

// Launchers of the fused elementwise kernels (elementwise.cu): the residual add of a branch into
// the stream, and attention's sigmoid output gate fused with the head merge. Raw pointers, fp32
// math. Each returns the launch error.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// out = x + delta over n contiguous elements, added in fp32 and rounded to x's type. x and out
// are `stream`, delta is `delta` (fp32 stream + bf16 branch, or both the same type).
cudaError_t ResidualAddForward(Dtype stream, Dtype delta, const void* x, const void* d, void* out,
                               int64_t n, cudaStream_t cuda_stream);

// Shapes and strides (in elements) of the gate: context (B, H, T, Dh) with any strides but a
// contiguous last axis; gate and out (B, T, H * Dh) contiguous; all of one dtype.
struct GateArgs {
  int64_t batch = 0;
  int64_t heads = 0;
  int64_t seq = 0;
  int64_t head_dim = 0;
  int64_t context_stride[3] = {0, 0, 0};  // for the B, H, T axes
};

// out[b, t, h * Dh + j] = context[b, h, t, j] * sigmoid(gate[b, t, h * Dh + j]).
cudaError_t SigmoidGateForward(Dtype dtype, const GateArgs& args, const void* context,
                               const void* gate, void* out, cudaStream_t stream);

// Given dout (B, T, H * Dh) contiguous: dcontext (written with context's strides) =
// dout * sigmoid(gate) and dgate = dout * context * s * (1 - s).
cudaError_t SigmoidGateBackward(Dtype dtype, const GateArgs& args, const void* dout,
                                const void* context, const void* gate, void* dcontext,
                                void* dgate, cudaStream_t stream);

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_ELEMENTWISE_CUDA_H_
