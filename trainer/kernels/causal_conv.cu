// Causal depthwise convolution over the sequence axis (the worker arch's token mixer before its
// first norm): one pass forward, one pass for the input gradient, and one column-parallel pass
// that reduces the tap and bias gradients deterministically. ATen runs it as a chain of
// `addcmul`s over padded views, and its backward as strided multiplies, adds and reductions.

#include <algorithm>

#include "trainer/kernels/causal_conv_cuda.h"
#include "trainer/kernels/cuda_common.cuh"

namespace gauntlet::kernels {
namespace {

constexpr int kThreads = 256;
// Row chunks of the tap/bias reduction: d = 256 channels make one block per chunk, so it takes
// about a thousand chunks (16 rows each at B*T = 16,384) to keep an H200 busy.
constexpr int kRowChunks = 1024;

// out (or dx) for VEC channels of one (b, t). `sign` picks the direction: forward reads
// x[t - (K-1) + j] with tap j; the input gradient reads g[t + (K-1) - j] with tap j.
template <typename T, int VEC, int K, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    CausalConvKernel(CausalConvShape s, const T* __restrict__ in, const float* __restrict__ taps,
                     const float* __restrict__ bias, T* __restrict__ out) {
  const int64_t n = s.batch * s.seq * s.d;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads * VEC;
  for (int64_t e = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * VEC; e < n;
       e += stride) {
    const int64_t c = e % s.d;
    const int64_t t = (e / s.d) % s.seq;
    float acc[VEC];
    if (!kBackward && bias != nullptr) {
      LoadF<float, VEC>(bias + c, acc);
    } else {
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[i] = 0.f;
    }
#pragma unroll
    for (int j = 0; j < K; ++j) {
      const int64_t shift = kBackward ? (K - 1 - j) : -(K - 1 - j);
      const int64_t src_t = t + shift;
      if (src_t < 0 || src_t >= s.seq) continue;
      float v[VEC], w[VEC];
      LoadF<T, VEC>(in + e + shift * s.d, v);
      LoadF<float, VEC>(taps + j * s.d + c, w);
#pragma unroll
      for (int i = 0; i < VEC; ++i) acc[i] = fmaf(v[i], w[i], acc[i]);
    }
    StoreF<T, VEC>(out + e, acc);
  }
}

// Partial tap and bias gradients: block (x, y) owns channels [x * 256, x * 256 + 256) and row
// chunk y. A thread walks its chunk's rows in order keeping the last K inputs of its channel in
// registers, so g and x are each read once.
template <typename T, int K>
__global__ void __launch_bounds__(kThreads)
    CausalConvGradTapsKernel(CausalConvShape s, const T* __restrict__ g, const T* __restrict__ x,
                             float* __restrict__ partial) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (c >= s.d) return;
  const int64_t rows = s.batch * s.seq;
  const int64_t per_chunk = (rows + gridDim.y - 1) / gridDim.y;
  const int64_t begin = blockIdx.y * per_chunk;
  const int64_t end = min(rows, begin + per_chunk);
  float sums[K + 1];
#pragma unroll
  for (int j = 0; j <= K; ++j) sums[j] = 0.f;
  // window[j] = x[b, t - (K-1) + j, c] (zero before the sequence start).
  float window[K];
  if (begin < end) {
    const int64_t t0 = begin % s.seq;
#pragma unroll
    for (int j = 0; j < K - 1; ++j) {
      const int64_t back = K - 1 - j;  // window[j] for row begin-1 shifted: x[t0 - back]
      window[j + 1] = t0 - back >= 0 ? ToFloat(x[(begin - back) * s.d + c]) : 0.f;
    }
  }
  for (int64_t row = begin; row < end; ++row) {
    const int64_t t = row % s.seq;
#pragma unroll
    for (int j = 0; j < K - 1; ++j) window[j] = t == 0 ? 0.f : window[j + 1];
    window[K - 1] = ToFloat(x[row * s.d + c]);
    const float gv = ToFloat(g[row * s.d + c]);
#pragma unroll
    for (int j = 0; j < K; ++j) sums[j] = fmaf(gv, window[j], sums[j]);
    sums[K] += gv;
  }
#pragma unroll
  for (int j = 0; j <= K; ++j) {
    partial[(static_cast<int64_t>(blockIdx.y) * (K + 1) + j) * s.d + c] = sums[j];
  }
}

// Sums the chunks' partials: dtaps (K, d) and dbias (d), output j * d + c. A block owns 32 outputs;
// its 8 row groups each sum every 8th chunk, then one thread per output adds the 8 group sums in a
// fixed order (deterministic).
constexpr int kSumColumns = 32;
constexpr int kSumGroups = 8;

__global__ void __launch_bounds__(kSumColumns * kSumGroups)
    CausalConvSumKernel(const float* __restrict__ partial, int chunks, int k, int64_t d,
                        float* __restrict__ dtaps, float* __restrict__ dbias) {
  __shared__ float group_sums[kSumGroups][kSumColumns];
  const int64_t outs = (k + 1) * d;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kSumColumns + threadIdx.x;
  float s = 0.f;
  if (idx < outs) {
    for (int i = threadIdx.y; i < chunks; i += kSumGroups) s += partial[i * outs + idx];
  }
  group_sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || idx >= outs) return;
  float total = 0.f;
#pragma unroll
  for (int g = 0; g < kSumGroups; ++g) total += group_sums[g][threadIdx.x];
  if (idx < k * d) {
    dtaps[idx] = total;
  } else {
    dbias[idx - k * d] = total;
  }
}

int Blocks(int64_t items) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads,
                                                                  8192)));
}

template <typename F>
bool WithWidth(int kernel, F&& f) {
  switch (kernel) {
#define GAUNTLET_CONV_WIDTH(KK) \
  case KK:                      \
    f(std::integral_constant<int, KK>{}); \
    return true;
    GAUNTLET_CONV_WIDTH(1)
    GAUNTLET_CONV_WIDTH(2)
    GAUNTLET_CONV_WIDTH(3)
    GAUNTLET_CONV_WIDTH(4)
    GAUNTLET_CONV_WIDTH(5)
    GAUNTLET_CONV_WIDTH(6)
    GAUNTLET_CONV_WIDTH(7)
    GAUNTLET_CONV_WIDTH(8)
#undef GAUNTLET_CONV_WIDTH
    default:
      return false;
  }
}

template <typename T, bool kBackward>
cudaError_t LaunchConv(const CausalConvShape& s, const void* in, const float* taps,
                       const float* bias, void* out, cudaStream_t stream) {
  const int64_t n = s.batch * s.seq * s.d;
  if (n == 0) return cudaSuccess;
  constexpr int kVec = 16 / sizeof(T);
  const bool vec = s.d % kVec == 0 && Aligned16(in) && Aligned16(out) && Aligned16(taps) &&
                   (bias == nullptr || Aligned16(bias));
  const bool ok = WithWidth(s.kernel, [&](auto width) {
    constexpr int K = decltype(width)::value;
    if (vec) {
      CausalConvKernel<T, kVec, K, kBackward><<<Blocks(n / kVec), kThreads, 0, stream>>>(
          s, static_cast<const T*>(in), taps, bias, static_cast<T*>(out));
    } else {
      CausalConvKernel<T, 1, K, kBackward><<<Blocks(n), kThreads, 0, stream>>>(
          s, static_cast<const T*>(in), taps, bias, static_cast<T*>(out));
    }
  });
  return ok ? cudaGetLastError() : cudaErrorInvalidValue;
}

int Chunks(const CausalConvShape& s) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(s.batch * s.seq, kRowChunks)));
}

}  // namespace

cudaError_t CausalConvForward(Dtype dtype, const CausalConvShape& shape, const void* x,
                              const float* taps, const float* bias, void* out,
                              cudaStream_t stream) {
  cudaError_t err = cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    err = LaunchConv<scalar_t, false>(shape, x, taps, bias, out, stream);
  });
  return err;
}

int64_t CausalConvBackwardScratch(const CausalConvShape& shape) {
  return static_cast<int64_t>(Chunks(shape)) * (shape.kernel + 1) * shape.d;
}

cudaError_t CausalConvBackward(Dtype dtype, const CausalConvShape& shape, const void* g,
                               const void* x, const float* taps, void* dx, float* dtaps,
                               float* dbias, float* scratch, cudaStream_t stream) {
  if (shape.kernel < 1 || shape.kernel > kMaxCausalConvWidth) return cudaErrorInvalidValue;
  cudaError_t err = cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    err = LaunchConv<scalar_t, true>(shape, g, taps, nullptr, dx, stream);
    if (err != cudaSuccess) return err;
    const int chunks = Chunks(shape);
    if (shape.batch * shape.seq > 0) {
      WithWidth(shape.kernel, [&](auto width) {
        constexpr int K = decltype(width)::value;
        CausalConvGradTapsKernel<scalar_t, K>
            <<<dim3((shape.d + kThreads - 1) / kThreads, chunks), kThreads, 0, stream>>>(
                shape, static_cast<const scalar_t*>(g), static_cast<const scalar_t*>(x), scratch);
      });
    }
    const int used = shape.batch * shape.seq > 0 ? chunks : 0;
    const int64_t outs = (shape.kernel + 1) * shape.d;
    CausalConvSumKernel<<<static_cast<int>((outs + kSumColumns - 1) / kSumColumns),
                          dim3(kSumColumns, kSumGroups), 0, stream>>>(scratch, used, shape.kernel,
                                                                       shape.d, dtaps, dbias);
  });
  return err == cudaSuccess ? cudaGetLastError() : err;
}

}  // namespace gauntlet::kernels
