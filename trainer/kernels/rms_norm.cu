// Fused residual-add + RMSNorm, forward and backward. One warp per row; a row is read twice
// (statistics, then output), the second time from L1/L2. Math in fp32; the stream (S), the added
// branch (D) and the normalised output (Y) each keep their own storage type (rms_norm_cuda.h).

#include <algorithm>

#include "trainer/kernels/cuda_common.cuh"
#include "trainer/kernels/partial_sums.cuh"
#include "trainer/kernels/rms_norm_cuda.h"

namespace gauntlet::kernels {
namespace {

constexpr int kWarps = 8;  // warps (rows in flight) per block
// Backward grid cap: enough blocks to fill an H200 at 50% occupancy, few enough that the
// per-block weight-gradient partials stay small next to the activations.
constexpr int kMaxBackwardBlocks = 528;
// Blocks (row chunks) of the column-parallel weight-gradient pass for wide rows.
constexpr int kDwRowChunks = 256;

template <typename S, typename D, typename Y, int VEC>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormForwardKernel(const S* __restrict__ x, const D* __restrict__ delta,
                         const S* __restrict__ w, S* sum, Y* __restrict__ y,
                         float* __restrict__ rstd, int64_t rows, int d, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows) return;
  const S* xr = x + row * d;
  S* sr = sum + row * d;
  float sq = 0.f;
  for (int c = lane * VEC; c < d; c += 32 * VEC) {
    float v[VEC];
    LoadF<S, VEC>(xr + c, v);
    if (delta != nullptr) {
      float dv[VEC];
      LoadF<D, VEC>(delta + row * d + c, dv);
      // Round the sum to S first: the residual stream holds S, and the norm must see it.
#pragma unroll
      for (int i = 0; i < VEC; ++i) v[i] = ToFloat(FromFloat<S>(v[i] + dv[i]));
      StoreF<S, VEC>(sr + c, v);
    }
#pragma unroll
    for (int i = 0; i < VEC; ++i) sq += v[i] * v[i];
  }
  sq = WarpSum(sq);
  const float r = rsqrtf(sq / d + eps);
  if (lane == 0) rstd[row] = r;
  const S* src = delta != nullptr ? sr : xr;  // this thread wrote sr: visible to it
  for (int c = lane * VEC; c < d; c += 32 * VEC) {
    float v[VEC], wv[VEC];
    LoadF<S, VEC>(src + c, v);
    LoadF<S, VEC>(w + c, wv);
#pragma unroll
    for (int i = 0; i < VEC; ++i) v[i] = v[i] * r * wv[i];
    StoreF<Y, VEC>(y + row * d + c, v);
  }
}

// dx (and its copy in the branch's type) for VEC columns of one row (see RmsNormBackward).
template <typename S, typename D, int VEC>
__device__ __forceinline__ void BackwardColumn(const float (&g)[VEC], const float (&xv)[VEC],
                                               const S* w, const S* dres, S* dx, D* ddelta,
                                               float r, float coef) {
  float wv[VEC], out[VEC];
  LoadF<S, VEC>(w, wv);
  if (dres != nullptr) {
    LoadF<S, VEC>(dres, out);
  } else {
#pragma unroll
    for (int i = 0; i < VEC; ++i) out[i] = 0.f;
  }
#pragma unroll
  for (int i = 0; i < VEC; ++i) out[i] += r * g[i] * wv[i] - xv[i] * coef;
  StoreF<S, VEC>(dx, out);
  if (ddelta != nullptr) StoreF<D, VEC>(ddelta, out);
}

// K > 0: each lane keeps its columns' weight-gradient sums in registers (d <= K * 32 * VEC) and
// the block writes one partial row to `partial`; K == 0: dw is left to RmsNormDwKernel.
template <typename S, typename D, typename Y, int VEC, int K>
__global__ void __launch_bounds__(kWarps * 32)
    RmsNormBackwardKernel(const Y* __restrict__ dy, const S* __restrict__ dres,
                          const S* __restrict__ x, const S* __restrict__ w,
                          const float* __restrict__ rstd, S* __restrict__ dx,
                          D* __restrict__ ddelta, float* __restrict__ partial, int64_t rows,
                          int d) {
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
    const Y* dyr = dy + row * d;
    const S* xr = x + row * d;
    const float r = rstd[row];
    float dot = 0.f;
    for (int c = lane * VEC; c < d; c += 32 * VEC) {
      float g[VEC], xv[VEC], wv[VEC];
      LoadF<Y, VEC>(dyr + c, g);
      LoadF<S, VEC>(xr + c, xv);
      LoadF<S, VEC>(w + c, wv);
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
          LoadF<Y, VEC>(dyr + c, g);
          LoadF<S, VEC>(xr + c, xv);
          BackwardColumn<S, D, VEC>(g, xv, w + c,
                                    dres != nullptr ? dres + row * d + c : nullptr,
                                    dx + row * d + c,
                                    ddelta != nullptr ? ddelta + row * d + c : nullptr, r, coef);
#pragma unroll
          for (int i = 0; i < VEC; ++i) acc[k][i] += g[i] * xv[i] * r;
        }
      }
    } else {
      for (int c = lane * VEC; c < d; c += 32 * VEC) {
        float g[VEC], xv[VEC];
        LoadF<Y, VEC>(dyr + c, g);
        LoadF<S, VEC>(xr + c, xv);
        BackwardColumn<S, D, VEC>(g, xv, w + c, dres != nullptr ? dres + row * d + c : nullptr,
                                  dx + row * d + c,
                                  ddelta != nullptr ? ddelta + row * d + c : nullptr, r, coef);
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
template <typename S, typename Y>
__global__ void __launch_bounds__(256)
    RmsNormDwKernel(const Y* __restrict__ dy, const S* __restrict__ x,
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

// VEC elements of the stream type make one 16-byte access; narrower types move fewer bytes.
template <typename S>
constexpr int kVec = 16 / sizeof(S);

template <typename S>
bool Vectorizable(int64_t d, std::initializer_list<const void*> ptrs) {
  if (d % kVec<S> != 0) return false;
  for (const void* p : ptrs) {
    if (p != nullptr && !Aligned16(p)) return false;
  }
  return true;
}

int64_t BackwardBlocks(int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>((rows + kWarps - 1) / kWarps, kMaxBackwardBlocks));
}

// Columns per lane chunk with registers for dw: up to 8 chunks of 32 lanes (d = 1024 for a
// float32 stream, GPT-2 small's 768 included) and d <= 1024 (the block's [kWarps][d] float
// partials within the default 48 KB of shared memory); wider rows take the separate column pass.
int RegisterChunks(int64_t d, int vec) {
  const int64_t chunks = (d + 32 * vec - 1) / (32 * vec);
  return chunks <= 8 && d <= 1024 ? static_cast<int>(chunks) : 0;
}

template <typename S, typename D, typename Y, int VEC>
void LaunchBackward(const Y* dy, const S* dres, const S* x, const S* w, const float* rstd, S* dx,
                    D* ddelta, S* dw, float* scratch, int64_t rows, int d, cudaStream_t stream) {
  const int blocks = static_cast<int>(BackwardBlocks(rows));
  const int k = RegisterChunks(d, VEC);
  const size_t smem = static_cast<size_t>(kWarps) * d * sizeof(float);
  int partials = blocks;
  switch (k) {
#define GAUNTLET_RMS_BWD(KK)                                                             \
  case KK:                                                                               \
    RmsNormBackwardKernel<S, D, Y, VEC, KK><<<blocks, kWarps * 32, KK > 0 ? smem : 0, stream>>>( \
        dy, dres, x, w, rstd, dx, ddelta, scratch, rows, d);                            \
    break;
    GAUNTLET_RMS_BWD(0)
    GAUNTLET_RMS_BWD(1)
    GAUNTLET_RMS_BWD(2)
    GAUNTLET_RMS_BWD(3)
    GAUNTLET_RMS_BWD(4)
    GAUNTLET_RMS_BWD(5)
    GAUNTLET_RMS_BWD(6)
    GAUNTLET_RMS_BWD(7)
    GAUNTLET_RMS_BWD(8)
#undef GAUNTLET_RMS_BWD
  }
  if (k == 0) {
    const int chunks = static_cast<int>(std::min<int64_t>(rows, kDwRowChunks));
    RmsNormDwKernel<S, Y><<<dim3((d + 255) / 256, chunks), 256, 0, stream>>>(dy, x, rstd, scratch,
                                                                             rows, d);
    partials = chunks;
  }
  LaunchSumPartials<S>(scratch, partials, d, dw, stream);
}

template <typename S_, typename D_, typename Y_>
struct Types {
  using S = S_;
  using D = D_;
  using Y = Y_;
};

// Calls f(Types<S, D, Y>{}) for a supported combination; false otherwise.
template <typename F>
bool DispatchTypes(const RmsNormTypes& t, F&& f) {
  using bf16 = __nv_bfloat16;
  constexpr Dtype kF32 = Dtype::kFloat32;
  constexpr Dtype kBf16 = Dtype::kBFloat16;
  if (t.stream == kBf16) {
    if (t.delta != kBf16 || t.out != kBf16) return false;
    f(Types<bf16, bf16, bf16>{});
  } else if (t.delta == kF32 && t.out == kF32) {
    f(Types<float, float, float>{});
  } else if (t.delta == kF32) {
    f(Types<float, float, bf16>{});
  } else if (t.out == kF32) {
    f(Types<float, bf16, float>{});
  } else {
    f(Types<float, bf16, bf16>{});
  }
  return true;
}

}  // namespace

bool RmsNormTypesSupported(const RmsNormTypes& types) {
  return DispatchTypes(types, [](auto) {});
}

cudaError_t RmsNormForward(const RmsNormTypes& types, const void* x, const void* delta,
                           const void* w, void* sum, void* y, float* rstd, int64_t rows,
                           int64_t d, float eps, cudaStream_t stream) {
  if (rows == 0) return RmsNormTypesSupported(types) ? cudaSuccess : cudaErrorInvalidValue;
  const int blocks = static_cast<int>((rows + kWarps - 1) / kWarps);
  const bool ok = DispatchTypes(types, [&](auto tag) {
    using S = typename decltype(tag)::S;
    using D = typename decltype(tag)::D;
    using Y = typename decltype(tag)::Y;
    const auto* xp = static_cast<const S*>(x);
    const auto* dp = static_cast<const D*>(delta);
    const auto* wp = static_cast<const S*>(w);
    auto* sp = static_cast<S*>(sum);
    auto* yp = static_cast<Y*>(y);
    if (Vectorizable<S>(d, {x, delta, w, delta != nullptr ? sum : nullptr, y})) {
      RmsNormForwardKernel<S, D, Y, kVec<S>><<<blocks, kWarps * 32, 0, stream>>>(
          xp, dp, wp, sp, yp, rstd, rows, static_cast<int>(d), eps);
    } else {
      RmsNormForwardKernel<S, D, Y, 1><<<blocks, kWarps * 32, 0, stream>>>(
          xp, dp, wp, sp, yp, rstd, rows, static_cast<int>(d), eps);
    }
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

int64_t RmsNormBackwardScratch(int64_t rows, int64_t d) {
  return std::max<int64_t>(BackwardBlocks(rows), std::min<int64_t>(rows, kDwRowChunks)) * d;
}

cudaError_t RmsNormBackward(const RmsNormTypes& types, const void* dy, const void* dresidual,
                            const void* x, const void* w, const float* rstd, void* dx,
                            void* ddelta, void* dw, float* scratch, int64_t rows, int64_t d,
                            cudaStream_t stream) {
  const bool ok = DispatchTypes(types, [&](auto tag) {
    using S = typename decltype(tag)::S;
    using D = typename decltype(tag)::D;
    using Y = typename decltype(tag)::Y;
    auto* dwp = static_cast<S*>(dw);
    if (rows == 0) {
      // No rows: dw is zero. One tiny kernel keeps it on the stream (capturable).
      LaunchSumPartials<S>(scratch, 0, static_cast<int>(d), dwp, stream);
      return;
    }
    const auto* dyp = static_cast<const Y*>(dy);
    const auto* drp = static_cast<const S*>(dresidual);
    const auto* xp = static_cast<const S*>(x);
    const auto* wp = static_cast<const S*>(w);
    auto* dxp = static_cast<S*>(dx);
    auto* ddp = static_cast<D*>(ddelta);
    if (Vectorizable<S>(d, {dy, dresidual, x, w, dx, ddelta})) {
      LaunchBackward<S, D, Y, kVec<S>>(dyp, drp, xp, wp, rstd, dxp, ddp, dwp, scratch, rows,
                                       static_cast<int>(d), stream);
    } else {
      LaunchBackward<S, D, Y, 1>(dyp, drp, xp, wp, rstd, dxp, ddp, dwp, scratch, rows,
                                 static_cast<int>(d), stream);
    }
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

}  // namespace gauntlet::kernels
