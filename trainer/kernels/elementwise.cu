// Memory-bound elementwise chains ATen would run as several passes (or one non-vectorised
// mixed-dtype pass), each done here in one vectorised read and write.

#include "trainer/kernels/cuda_common.cuh"
#include "trainer/kernels/elementwise_cuda.h"

namespace gauntlet::kernels {
namespace {

constexpr int kThreads = 256;

// Grid for n / vec work items, capped; kernels loop over the rest.
int Blocks(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 8192 ? (blocks > 0 ? blocks : 1) : 8192);
}

template <typename S, typename D, int VEC>
__global__ void __launch_bounds__(kThreads)
    ResidualAddKernel(const S* __restrict__ x, const D* __restrict__ delta, S* __restrict__ out,
                      int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads * VEC;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * VEC; i < n;
       i += stride) {
    float a[VEC], b[VEC];
    if (i + VEC <= n) {
      LoadF<S, VEC>(x + i, a);
      LoadF<D, VEC>(delta + i, b);
#pragma unroll
      for (int k = 0; k < VEC; ++k) a[k] += b[k];
      StoreF<S, VEC>(out + i, a);
    } else {
      for (int64_t k = i; k < n; ++k) out[k] = FromFloat<S>(ToFloat(x[k]) + ToFloat(delta[k]));
    }
  }
}

__device__ __forceinline__ float Sigmoid(float v) { return 1.f / (1.f + __expf(-v)); }

// Offset in context of element e of the merged (B, T, H * Dh) layout.
__device__ __forceinline__ int64_t ContextOffset(const GateArgs& a, int64_t e) {
  const int64_t d = a.heads * a.head_dim;
  const int64_t j = e % a.head_dim;
  const int64_t h = (e / a.head_dim) % a.heads;
  const int64_t t = (e / d) % a.seq;
  const int64_t b = e / (d * a.seq);
  return b * a.context_stride[0] + h * a.context_stride[1] + t * a.context_stride[2] + j;
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    SigmoidGateForwardKernel(GateArgs a, const T* __restrict__ context,
                             const T* __restrict__ gate, T* __restrict__ out) {
  const int64_t n = a.batch * a.seq * a.heads * a.head_dim;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads * VEC;
  for (int64_t e = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * VEC; e < n;
       e += stride) {
    float c[VEC], g[VEC];
    LoadF<T, VEC>(context + ContextOffset(a, e), c);
    LoadF<T, VEC>(gate + e, g);
#pragma unroll
    for (int k = 0; k < VEC; ++k) c[k] *= Sigmoid(g[k]);
    StoreF<T, VEC>(out + e, c);
  }
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    SigmoidGateBackwardKernel(GateArgs a, const T* __restrict__ dout,
                              const T* __restrict__ context, const T* __restrict__ gate,
                              T* __restrict__ dcontext, T* __restrict__ dgate) {
  const int64_t n = a.batch * a.seq * a.heads * a.head_dim;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads * VEC;
  for (int64_t e = (static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x) * VEC; e < n;
       e += stride) {
    const int64_t ce = ContextOffset(a, e);
    float go[VEC], c[VEC], g[VEC], dc[VEC], dg[VEC];
    LoadF<T, VEC>(dout + e, go);
    LoadF<T, VEC>(context + ce, c);
    LoadF<T, VEC>(gate + e, g);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float s = Sigmoid(g[k]);
      dc[k] = go[k] * s;
      dg[k] = go[k] * c[k] * s * (1.f - s);
    }
    StoreF<T, VEC>(dcontext + ce, dc);
    StoreF<T, VEC>(dgate + e, dg);
  }
}

// The widest vector (<= 16 bytes) that divides the head width and every stride and pointer.
template <typename T>
int GateVec(const GateArgs& a, std::initializer_list<const void*> ptrs) {
  for (int vec = 16 / static_cast<int>(sizeof(T)); vec > 1; vec /= 2) {
    bool ok = a.head_dim % vec == 0;
    for (int64_t s : a.context_stride) ok = ok && s % vec == 0;
    for (const void* p : ptrs) {
      ok = ok && reinterpret_cast<std::uintptr_t>(p) % (vec * sizeof(T)) == 0;
    }
    if (ok) return vec;
  }
  return 1;
}

template <typename T, typename Launch>
void WithGateVec(int vec, Launch&& launch) {
  switch (vec) {
    case 8: launch(std::integral_constant<int, 8>{}); break;
    case 4: launch(std::integral_constant<int, 4>{}); break;
    case 2: launch(std::integral_constant<int, 2>{}); break;
    default: launch(std::integral_constant<int, 1>{}); break;
  }
}

}  // namespace

cudaError_t ResidualAddForward(Dtype stream, Dtype delta, const void* x, const void* d, void* out,
                               int64_t n, cudaStream_t cuda_stream) {
  if (n == 0) return cudaSuccess;
  const bool aligned = Aligned16(x) && Aligned16(d) && Aligned16(out);
  if (stream == Dtype::kFloat32 && delta == Dtype::kBFloat16) {
    const auto* xp = static_cast<const float*>(x);
    const auto* dp = static_cast<const __nv_bfloat16*>(d);
    auto* op = static_cast<float*>(out);
    if (aligned) {
      ResidualAddKernel<float, __nv_bfloat16, 4><<<Blocks(n / 4 + 1), kThreads, 0, cuda_stream>>>(
          xp, dp, op, n);
    } else {
      ResidualAddKernel<float, __nv_bfloat16, 1><<<Blocks(n), kThreads, 0, cuda_stream>>>(
          xp, dp, op, n);
    }
  } else if (stream == delta) {
    GAUNTLET_DISPATCH_DTYPE(stream, {
      constexpr int kVec = 16 / sizeof(scalar_t);
      const auto* xp = static_cast<const scalar_t*>(x);
      const auto* dp = static_cast<const scalar_t*>(d);
      auto* op = static_cast<scalar_t*>(out);
      if (aligned) {
        ResidualAddKernel<scalar_t, scalar_t, kVec>
            <<<Blocks(n / kVec + 1), kThreads, 0, cuda_stream>>>(xp, dp, op, n);
      } else {
        ResidualAddKernel<scalar_t, scalar_t, 1><<<Blocks(n), kThreads, 0, cuda_stream>>>(
            xp, dp, op, n);
      }
    });
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t SigmoidGateForward(Dtype dtype, const GateArgs& args, const void* context,
                               const void* gate, void* out, cudaStream_t stream) {
  const int64_t n = args.batch * args.seq * args.heads * args.head_dim;
  if (n == 0) return cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    const int vec = GateVec<scalar_t>(args, {context, gate, out});
    WithGateVec<scalar_t>(vec, [&](auto v) {
      constexpr int kVec = decltype(v)::value;
      SigmoidGateForwardKernel<scalar_t, kVec><<<Blocks(n / kVec), kThreads, 0, stream>>>(
          args, static_cast<const scalar_t*>(context), static_cast<const scalar_t*>(gate),
          static_cast<scalar_t*>(out));
    });
  });
  return cudaGetLastError();
}

cudaError_t SigmoidGateBackward(Dtype dtype, const GateArgs& args, const void* dout,
                                const void* context, const void* gate, void* dcontext,
                                void* dgate, cudaStream_t stream) {
  const int64_t n = args.batch * args.seq * args.heads * args.head_dim;
  if (n == 0) return cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    const int vec = GateVec<scalar_t>(args, {dout, context, gate, dcontext, dgate});
    WithGateVec<scalar_t>(vec, [&](auto v) {
      constexpr int kVec = decltype(v)::value;
      SigmoidGateBackwardKernel<scalar_t, kVec><<<Blocks(n / kVec), kThreads, 0, stream>>>(
          args, static_cast<const scalar_t*>(dout), static_cast<const scalar_t*>(context),
          static_cast<const scalar_t*>(gate), static_cast<scalar_t*>(dcontext),
          static_cast<scalar_t*>(dgate));
    });
  });
  return cudaGetLastError();
}

}  // namespace gauntlet::kernels
