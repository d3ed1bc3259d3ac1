// Bias gradients of the feed-forward block as column sums, the first layer's fused with GELU's
// backward: ATen runs these as a GELU-backward pass plus a `sum(0)` over the non-contiguous axis
// per bias, which re-reads the (rows, d_ff) gradient and reduces it several times slower than
// the bandwidth allows.

#include <algorithm>

#include "trainer/kernels/cuda_common.cuh"
#include "trainer/kernels/gelu_ffn_cuda.h"
#include "trainer/kernels/partial_sums.cuh"

namespace gauntlet::kernels {
namespace {

// A block is 32 lanes along the columns (VEC columns each) by kRowGroups rows in flight.
constexpr int kRowGroups = 8;
// Enough blocks to fill an H200 a few times over; fixed, so the summation order (and so the
// result) does not depend on the GPU.
constexpr int64_t kTargetBlocks = 512;

__device__ __forceinline__ float GeluGrad(float x) {
  const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
  const float pdf = __expf(-0.5f * x * x) * 0.39894228040143268f;
  return cdf + x * pdf;
}

template <typename T, int VEC, bool kGelu>
__global__ void __launch_bounds__(32 * kRowGroups)
    ColumnPartialKernel(const T* __restrict__ src, const T* __restrict__ pre,
                        T* __restrict__ dpre, float* __restrict__ partial, int64_t rows,
                        int64_t cols, int64_t rows_per_chunk) {
  __shared__ float group_sums[kRowGroups][32 * VEC];
  const int64_t c = (static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x) * VEC;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * rows_per_chunk;
  const int64_t end = min(rows, begin + rows_per_chunk);
  float acc[VEC];
#pragma unroll
  for (int i = 0; i < VEC; ++i) acc[i] = 0.f;
  if (c < cols) {
    // kUnroll rows per trip, their loads issued before any use: one 16-byte load per tensor in
    // flight per thread left the first version at 45% of the memory bandwidth.
    constexpr int kUnroll = 4;
    int64_t r = begin + threadIdx.y;
    for (; r + (kUnroll - 1) * kRowGroups < end; r += kUnroll * kRowGroups) {
      float g[kUnroll][VEC];
      float h[kUnroll][VEC];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        LoadF<T, VEC>(src + (r + u * kRowGroups) * cols + c, g[u]);
        if constexpr (kGelu) LoadF<T, VEC>(pre + (r + u * kRowGroups) * cols + c, h[u]);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if constexpr (kGelu) {
#pragma unroll
          for (int i = 0; i < VEC; ++i) g[u][i] *= GeluGrad(h[u][i]);
          StoreF<T, VEC>(dpre + (r + u * kRowGroups) * cols + c, g[u]);
        }
#pragma unroll
        for (int i = 0; i < VEC; ++i) acc[i] += g[u][i];
      }
    }
    for (; r < end; r += kRowGroups) {
      float g[VEC];
      LoadF<T, VEC>(src + r * cols + c, g);
      if constexpr (kGelu) {
        float h[VEC];
        LoadF<T, VEC>(pre + r * cols + c, h);
#pragma unroll
        for (int i = 0; i < VEC; ++i) g[i] *= GeluGrad(h[i]);
        StoreF<T, VEC>(dpre + r * cols + c, g);
      }
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[i] += g[i];
    }
  }
#pragma unroll
  for (int i = 0; i < VEC; ++i) group_sums[threadIdx.y][threadIdx.x * VEC + i] = acc[i];
  __syncthreads();
  // Fixed-order sum over the row groups: deterministic.
  for (int j = threadIdx.y * 32 + threadIdx.x; j < 32 * VEC; j += 32 * kRowGroups) {
    const int64_t col = static_cast<int64_t>(blockIdx.x) * 32 * VEC + j;
    if (col < cols) {
      float s = 0.f;
#pragma unroll
      for (int g = 0; g < kRowGroups; ++g) s += group_sums[g][j];
      partial[static_cast<int64_t>(blockIdx.y) * cols + col] = s;
    }
  }
}

struct Grid {
  int64_t column_blocks;
  int64_t chunks;
  int64_t rows_per_chunk;
};

Grid GridFor(int64_t rows, int64_t cols, int vec) {
  Grid g;
  g.column_blocks = (cols + 32 * vec - 1) / (32 * vec);
  const int64_t max_chunks = std::max<int64_t>(1, (rows + kRowGroups - 1) / kRowGroups);
  g.chunks = std::clamp<int64_t>(kTargetBlocks / g.column_blocks, 1, max_chunks);
  g.rows_per_chunk = (rows + g.chunks - 1) / g.chunks;
  g.chunks = (rows + g.rows_per_chunk - 1) / g.rows_per_chunk;
  return g;
}

template <typename T>
constexpr int kVec = 16 / sizeof(T);

template <typename T, bool kGelu>
cudaError_t Launch(const T* src, const T* pre, T* dpre, float* scratch, float* sum, int64_t rows,
                   int64_t cols, cudaStream_t stream) {
  const bool vectorized = cols % kVec<T> == 0 && Aligned16(src) &&
                          (!kGelu || (Aligned16(pre) && Aligned16(dpre)));
  const Grid g = GridFor(rows, cols, vectorized ? kVec<T> : 1);
  const dim3 grid(static_cast<unsigned>(g.column_blocks), static_cast<unsigned>(g.chunks));
  const dim3 block(32, kRowGroups);
  if (vectorized) {
    ColumnPartialKernel<T, kVec<T>, kGelu>
        <<<grid, block, 0, stream>>>(src, pre, dpre, scratch, rows, cols, g.rows_per_chunk);
  } else {
    ColumnPartialKernel<T, 1, kGelu>
        <<<grid, block, 0, stream>>>(src, pre, dpre, scratch, rows, cols, g.rows_per_chunk);
  }
  LaunchSumPartials<float>(scratch, static_cast<int>(g.chunks), static_cast<int>(cols), sum,
                           stream);
  return cudaGetLastError();
}

}  // namespace

int64_t ColumnSumScratchFloats(int64_t rows, int64_t cols) {
  int64_t chunks = 1;
  for (int vec : {1, kVec<float>, kVec<__nv_bfloat16>}) {
    chunks = std::max(chunks, GridFor(rows, cols, vec).chunks);
  }
  return chunks * cols;
}

cudaError_t ColumnSum(Dtype dtype, const void* x, float* scratch, float* sum, int64_t rows,
                      int64_t cols, cudaStream_t stream) {
  cudaError_t err = cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, err = (Launch<scalar_t, false>(
                                     static_cast<const scalar_t*>(x), nullptr, nullptr, scratch,
                                     sum, rows, cols, stream)));
  return err;
}

cudaError_t GeluBackwardColumnSum(Dtype dtype, const void* dact, const void* pre, void* dpre,
                                  float* scratch, float* sum, int64_t rows, int64_t cols,
                                  cudaStream_t stream) {
  cudaError_t err = cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, err = (Launch<scalar_t, true>(
                                     static_cast<const scalar_t*>(dact),
                                     static_cast<const scalar_t*>(pre),
                                     static_cast<scalar_t*>(dpre), scratch, sum, rows, cols,
                                     stream)));
  return err;
}

}  // namespace gauntlet::kernels
