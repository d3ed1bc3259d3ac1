#ifndef GAUNTLET_TRAINER_KERNELS_CUDA_COMMON_CUH_
#define GAUNTLET_TRAINER_KERNELS_CUDA_COMMON_CUH_

// Device helpers shared by the .cu files: fp32 conversion of the storage types, packed vector
// loads/stores (16 bytes where the caller proved alignment) and warp reductions.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// N elements of T moved as one access (N * sizeof(T) must be 1, 2, 4, 8 or 16 bytes).
template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <typename T, int N>
__device__ __forceinline__ void LoadF(const T* p, float (&out)[N]) {
  const Pack<T, N> pack = *reinterpret_cast<const Pack<T, N>*>(p);
#pragma unroll
  for (int i = 0; i < N; ++i) out[i] = ToFloat(pack.v[i]);
}

template <typename T, int N>
__device__ __forceinline__ void StoreF(T* p, const float (&in)[N]) {
  Pack<T, N> pack;
#pragma unroll
  for (int i = 0; i < N; ++i) pack.v[i] = FromFloat<T>(in[i]);
  *reinterpret_cast<Pack<T, N>*>(p) = pack;
}

__device__ __forceinline__ float WarpSum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float WarpMax(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  }
  return x;
}

inline bool Aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Instantiates `body` with `scalar_t` bound to the CUDA type of `dtype`.
#define GAUNTLET_DISPATCH_DTYPE(dtype, ...)           \
  switch (dtype) {                                    \
    case ::gauntlet::kernels::Dtype::kFloat32: {      \
      using scalar_t = float;                         \
      __VA_ARGS__;                                    \
      break;                                          \
    }                                                 \
    case ::gauntlet::kernels::Dtype::kBFloat16: {     \
      using scalar_t = __nv_bfloat16;                 \
      __VA_ARGS__;                                    \
      break;                                          \
    }                                                 \
  }

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_CUDA_COMMON_CUH_
