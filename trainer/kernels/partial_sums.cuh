#ifndef GAUNTLET_TRAINER_KERNELS_PARTIAL_SUMS_CUH_
#define GAUNTLET_TRAINER_KERNELS_PARTIAL_SUMS_CUH_

// The second pass of the deterministic column reductions (weight and bias gradients): per-block
// partial rows summed in a fixed order.

#include <cuda_runtime.h>

#include "trainer/kernels/cuda_common.cuh"

namespace gauntlet::kernels {

// dw[c] = sum of the n partial rows. A block owns 32 columns; its 8 row groups each sum every 8th
// partial (coalesced along columns), then one thread per column adds the 8 group sums in a fixed
// order: deterministic, and enough blocks to cover a d = 256 row of hundreds of partials quickly.
constexpr int kSumColumns = 32;
constexpr int kSumGroups = 8;

template <typename T>
__global__ void __launch_bounds__(kSumColumns * kSumGroups)
    SumPartialsKernel(const float* __restrict__ partial, int n, int d, T* __restrict__ dw) {
  __shared__ float group_sums[kSumGroups][kSumColumns];
  const int c = blockIdx.x * kSumColumns + threadIdx.x;
  float s = 0.f;
  if (c < d) {
    for (int i = threadIdx.y; i < n; i += kSumGroups) s += partial[static_cast<int64_t>(i) * d + c];
  }
  group_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < d) {
    float total = 0.f;
#pragma unroll
    for (int g = 0; g < kSumGroups; ++g) total += group_sums[g][threadIdx.x];
    dw[c] = FromFloat<T>(total);
  }
}

template <typename T>
inline void LaunchSumPartials(const float* partial, int n, int d, T* dw, cudaStream_t stream) {
  SumPartialsKernel<T><<<(d + kSumColumns - 1) / kSumColumns, dim3(kSumColumns, kSumGroups), 0,
                         stream>>>(partial, n, d, dw);
}

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_PARTIAL_SUMS_CUH_
