// Fused residual-add + RMSNorm, forward and backward. One warp per row; a row is read twice
// (statistics, then output), the second time from L1/L2. Activations in T, math in fp32.

#include <algorithm>

#include "trainer/kernels/cuda_common.cuh"
#include "trainer/kernels/rms_norm_cuda.h"

namespace gauntlet::kernels {
namespace {

constexpr int kWarps = 8;  // warps (rows in flight) per block
// Backward grid cap: enough blocks to fill an H200 at 50% occupancy, few enough that the
// per-block weight-gradient partials stay small next to the activations.
constexpr int kMaxBackwardBlocks = 528;
// Blocks (row chunks) of the column-parallel weight-gradient pass for wide rows.
constexpr int kDwRowChunks = 256;

template <typename T, int VEC>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormForwardKernel(const T* __restrict__ x, const T* __restrict__ delta,
                         const T* __restrict__ w, T* sum, T* __restrict__ y,
                         float* __restrict__ rstd, int64_t rows, int d, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const T* xr = x + row * d;
  T* sr = sum + row * d;
  float sq = 0.f;
  for (int c = lane * VEC; c < d; c += 32 * VEC) {
    float v[VEC];
    LoadF<T, VEC>(xr + c, v);
    if (delta != nullptr) {
      float dv[VEC];
      LoadF<T, VEC>(delta + row * d + c, dv);
      // Round the sum to T first: the residual stream holds T, and the norm must see it.
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] = ToFloat(FromFloat<T>(v[i] + dv[i]));
      StoreF<T, VEC>(sr + c, v);
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) sq += v[i] * v[i];
  }
  sq = WarpSum(sq);
  const float r = rsqrtf(sq / d + eps);
  if (lane == 0) rstd[row] = r;
  const T* src = delta != nullptr ? sr : xr;  // this thread wrote sr: visible to it
  for (int c = lane * VEC; c < d; c += 32 * VEC) {
    float v[VEC], wv[VEC];
    LoadF<T, VEC>(src + c, v);
    LoadF<T, VEC>(w + c, wv);
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] = v[i] * r * wv[i];
    StoreF<T, VEC>(y + row * d + c, v);
  }
}

// dx for VEC columns of one row (see RmsNormBackward).
template <typename T, int VEC>
__device__ __forceinline__ void BackwardColumn(const float (&g)[VEC], const float (&xv)[VEC],
                                               const T* w, const T* dres, T* dx, float r,
                                               float coef) {
  float wv[VEC], out[VEC];
  LoadF<T, VEC>(w, wv);
  if (dres != nullptr) {
    LoadF<T, VEC>(dres, out);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) out[i] = 0.f;
  }
#pragma unroll
  for (int i = 0; i < VEC; ++i) out[i] += r * g[i] * wv[i] - xv[i] * coef;
  StoreF<T, VEC>(dx, out);
}

// K > 0: each lane keeps its columns' weight-gradient sums in registers (d <= K * 32 * VEC) and
// the block writes one partial row to `partial`; K == 0: dw is left to RmsNormDwKernel.
template <typename T, int VEC, int K>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormBackwardKernel(const T* __restrict__ dy, const T* __restrict__ dres,
                          const T* __restrict__ x, const T* __restrict__ w,
                          const float* __restrict__ rstd, T* __restrict__ dx,
                          float* __restrict__ partial, int64_t rows, int d) {
  extern __shared__ float smem[];  // [kWarps][d] when K > 0
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  float acc[K > 0 ? K : 1][VEC];
#pragma unroll
  for (int k = 0; k < (K > 0 ? K : 1); ++k)
#pragma unroll
    for (int i = 0; i < VEC; ++i) acc[k][i] = 0.f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp; row < rows;
       row += stride) {
    const T* dyr = dy + row * d;
    const T* xr = x + row * d;
    const float r = rstd[row];
    float dot = 0.f;
    for (int c = lane * VEC; c < d; c += 32 * VEC) {
      float g[VEC], xv[VEC], wv[VEC];
      LoadF<T, VEC>(dyr + c, g);
      LoadF<T, VEC>(xr + c, xv);
      LoadF<T, VEC>(w + c, wv);
#pragma unroll
      for (int i = 0; i < VEC; ++i) dot += g[i] * wv[i] * xv[i];
    }
    dot = WarpSum(dot);
    const float coef = r * r * r * dot / d;
    if constexpr (K > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int c = (k * 32 + lane) * VEC;
        if (c < d) {
          float g[VEC], xv[VEC];
          LoadF<T, VEC>(dyr + c, g);
          LoadF<T, VEC>(xr + c, xv);
          BackwardColumn<T, VEC>(g, xv, w + c, dres != nullptr ? dres + row * d + c : nullptr,
                                 dx + row * d + c, r, coef);
#pragma unroll
          for (int i = 0; i < VEC; ++i) acc[k][i] += g[i] * xv[i] * r;
        }
      }
    } else {
      for (int c = lane * VEC; c < d; c += 32 * VEC) {
        float g[VEC], xv[VEC];
        LoadF<T, VEC>(dyr + c, g);
        LoadF<T, VEC>(xr + c, xv);
        BackwardColumn<T, VEC>(g, xv, w + c, dres != nullptr ? dres + row * d + c : nullptr,
                                 dx + row * d + c, r, coef);
      }
    }
  }
  if constexpr (K > 0) {
    // Fixed-order reduction over the block's warps: deterministic.
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int c = (k * 32 + lane) * VEC;
      if (c < d) {
#pragma unroll
        for (int i = 0; i < VEC; ++i) smem[warp * d + c + i] = acc[k][i];
      }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      float s = 0.f;
#pragma unroll
      for (int wi = 0; wi < kWarps; ++wi) s += smem[wi * d + c];
      partial[static_cast<int64_t>(blockIdx.x) * d + c] = s;
    }
  }
}

// Column-parallel dw partials for wide rows: block (x, y) sums columns [x*256, x*256+256) over
// row chunk y. Consecutive threads read consecutive columns: coalesced.
template <typename T>
__global__ void __launch_bounds__(256)
    RmsNormDwKernel(const T* __restrict__ dy, const T* __restrict__ x,
                    const float* __restrict__ rstd, float* __restrict__ partial, int64_t rows,
                    int d) {
  const int c = blockIdx.x * 256 + threadIdx.x;
  if (c >= d) return;
  const int64_t per_chunk = (rows + gridDim.y - 1) / gridDim.y;
  const int64_t begin = blockIdx.y * per_chunk;
  const int64_t end = min(rows, begin + per_chunk);
  float s = 0.f;
  for (int64_t row = begin; row < end; ++row) {
    s += ToFloat(dy[row * d + c]) * ToFloat(x[row * d + c]) * rstd[row];
  }
  partial[static_cast<int64_t>(blockIdx.y) * d + c] = s;
}

template <typename T>
__global__ void __launch_bounds__(256)
    SumPartialsKernel(const float* __restrict__ partial, int n, int d, T* __restrict__ dw) {
  const int c = blockIdx.x * 256 + threadIdx.x;
  if (c >= d) return;
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += partial[static_cast<int64_t>(i) * d + c];
  dw[c] = FromFloat<T>(s);
}

template <typename T>
int VecWidth(int64_t d, std::initializer_list<const void*> ptrs) {
  constexpr int kVec = 16 / sizeof(T);
  if (d % kVec != 0) return 1;
  for (const void* p : ptrs) {
    if (p != nullptr && !Aligned16(p)) return 1;
  }
  return kVec;
}

int64_t BackwardBlocks(int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>((rows + kWarps - 1) / kWarps, kMaxBackwardBlocks));
}

// Columns per lane chunk with registers for dw: up to 4 chunks of 32 lanes.
int RegisterChunks(int64_t d, int vec) {
  const int64_t chunks = (d + 32 * vec - 1) / (32 * vec);
  return chunks <= 4 ? static_cast<int>(chunks) : 0;
}

template <typename T, int VEC>
void LaunchBackward(const T* dy, const T* dres, const T* x, const T* w, const float* rstd, T* dx,
                    T* dw, float* scratch, int64_t rows, int d, cudaStream_t stream) {
  const int blocks = static_cast<int>(BackwardBlocks(rows));
  const int k = RegisterChunks(d, VEC);
  const size_t smem = static_cast<size_t>(kWarps) * d * sizeof(float);
  int partials = blocks;
  switch (k) {
#define GAUNTLET_RMS_BWD(KK)                                                          \
  case KK:                                                                            \
    RmsNormBackwardKernel<T, VEC, KK><<<blocks, kWarps * 32, KK > 0 ? smem : 0, stream>>>( \
        dy, dres, x, w, rstd, dx, scratch, rows, d);                                  \
    break;
    GAUNTLET_RMS_BWD(0)
    GAUNTLET_RMS_BWD(1)
    GAUNTLET_RMS_BWD(2)
    GAUNTLET_RMS_BWD(3)
    GAUNTLET_RMS_BWD(4)
#undef GAUNTLET_RMS_BWD
  }
  if (k == 0) {
    const int chunks = static_cast<int>(std::min<int64_t>(rows, kDwRowChunks));
    RmsNormDwKernel<T><<<dim3((d + 255) / 256, chunks), 256, 0, stream>>>(dy, x, rstd, scratch,
                                                                          rows, d);
    partials = chunks;
  }
  SumPartialsKernel<T><<<(d + 255) / 256, 256, 0, stream>>>(scratch, partials, d, dw);
}

}  // namespace

cudaError_t RmsNormForward(Dtype dtype, const void* x, const void* delta, const void* w,
                           void* sum, void* y, float* rstd, int64_t rows, int64_t d, float eps,
                           cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const int blocks = static_cast<int>((rows + kWarps - 1) / kWarps);
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    const auto* xp = static_cast<const scalar_t*>(x);
    const auto* dp = static_cast<const scalar_t*>(delta);
    const auto* wp = static_cast<const scalar_t*>(w);
    auto* sp = static_cast<scalar_t*>(sum);
    auto* yp = static_cast<scalar_t*>(y);
    if (VecWidth<scalar_t>(d, {x, delta, w, delta != nullptr ? sum : nullptr, y}) > 1) {
      RmsNormForwardKernel<scalar_t, 16 / sizeof(scalar_t)><<<blocks, kWarps * 32, 0, stream>>>(
          xp, dp, wp, sp, yp, rstd, rows, static_cast<int>(d), eps);
    } else {
      RmsNormForwardKernel<scalar_t, 1><<<blocks, kWarps * 32, 0, stream>>>(
          xp, dp, wp, sp, yp, rstd, rows, static_cast<int>(d), eps);
    }
  });
  return cudaGetLastError();
}

int64_t RmsNormBackwardScratch(int64_t rows, int64_t d) {
  return std::max<int64_t>(BackwardBlocks(rows), std::min<int64_t>(rows, kDwRowChunks)) * d;
}

cudaError_t RmsNormBackward(Dtype dtype, const void* dy, const void* dresidual, const void* x,
                            const void* w, const float* rstd, void* dx, void* dw, float* scratch,
                            int64_t rows, int64_t d, cudaStream_t stream) {
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    if (rows == 0) {
      // No rows: dw is zero. One tiny kernel keeps it on the stream (capturable).
      SumPartialsKernel<scalar_t><<<(d + 255) / 256, 256, 0, stream>>>(
          scratch, 0, static_cast<int>(d), static_cast<scalar_t*>(dw));
      return cudaGetLastError();
    }
    const auto* dyp = static_cast<const scalar_t*>(dy);
    const auto* drp = static_cast<const scalar_t*>(dresidual);
    const auto* xp = static_cast<const scalar_t*>(x);
    const auto* wp = static_cast<const scalar_t*>(w);
    auto* dxp = static_cast<scalar_t*>(dx);
    auto* dwp = static_cast<scalar_t*>(dw);
    if (VecWidth<scalar_t>(d, {dy, dresidual, x, w, dx}) > 1) {
      LaunchBackward<scalar_t, 16 / sizeof(scalar_t)>(dyp, drp, xp, wp, rstd, dxp, dwp, scratch,
                                                      rows, static_cast<int>(d), stream);
    } else {
      LaunchBackward<scalar_t, 1>(dyp, drp, xp, wp, rstd, dxp, dwp, scratch, rows,
                                  static_cast<int>(d), stream);
    }
  });
  return cudaGetLastError();
}

}  // namespace gauntlet::kernels
