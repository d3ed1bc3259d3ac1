// RoPE fused with the (B, T, H, Dh) <-> (B, H, T, Dh) head transpose: one read and one write of
// every element, in 16-byte vectors when alignment allows. Block = one (batch, position) row;
// threads cover (slot, head, vector) of that row.

#include <algorithm>

#include "trainer/kernels/cuda_common.cuh"
#include "trainer/kernels/rotary_cuda.h"

namespace gauntlet::kernels {
namespace {

constexpr int kMaxThreads = 512;

template <typename T, int VEC>
__global__ void __launch_bounds__(kMaxThreads) RotaryKernel(RotaryArgs a) {
  const int64_t row = blockIdx.x;  // b * seq + t
  const int64_t b = row / a.seq;
  const int64_t t = row - b * a.seq;
  const int vecs = static_cast<int>(a.head_dim) / VEC;
  const int per_slot = static_cast<int>(a.heads) * vecs;
  const T* cos = static_cast<const T*>(a.cos) + b * a.table_batch_stride + t * a.table_seq_stride;
  const T* sin = static_cast<const T*>(a.sin) + b * a.table_batch_stride + t * a.table_seq_stride;
  for (int i = threadIdx.x; i < a.slots * per_slot; i += blockDim.x) {
    const int s = i / per_slot;
    const int rem = i - s * per_slot;
    const int h = rem / vecs;
    const int c = (rem - h * vecs) * VEC;
    float v[VEC];
    const T* in = static_cast<const T*>(a.in[s]);
    if (in != nullptr) {
      LoadF<T, VEC>(in + b * a.in_stride[0] + t * a.in_stride[1] + h * a.in_stride[2] + c, v);
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) v[j] = 0.f;
    }
    if (s < a.rotated) {
      float cv[VEC], sv[VEC], r[VEC];
      LoadF<T, VEC>(cos + c, cv);
      LoadF<T, VEC>(sin + c, sv);
#pragma unroll
      for (int j = 0; j < VEC; j += 2) {
        r[j] = v[j] * cv[j] + v[j + 1] * sv[j] * a.sin_sign;
        r[j + 1] = v[j + 1] * cv[j + 1] + v[j] * sv[j + 1] * a.sin_sign;
      }
#pragma unroll
      for (int j = 0; j < VEC; ++j) v[j] = r[j];
    }
    T* out = static_cast<T*>(a.out[s]);
    StoreF<T, VEC>(out + b * a.out_stride[0] + t * a.out_stride[1] + h * a.out_stride[2] + c, v);
  }
}

template <typename T>
bool CanVectorize(const RotaryArgs& a, int vec) {
  if (a.head_dim % vec != 0) return false;
  const auto ok = [vec](const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % (vec * sizeof(T)) == 0;
  };
  if (!ok(a.cos) || !ok(a.sin) || a.table_batch_stride % vec != 0 ||
      a.table_seq_stride % vec != 0) return false;
  for (int s = 0; s < a.slots; ++s) {
    if (!ok(a.in[s]) || !ok(a.out[s])) return false;
  }
  for (int k = 0; k < 3; ++k) {
    if (a.in_stride[k] % vec != 0 || a.out_stride[k] % vec != 0) return false;
  }
  return true;
}

template <typename T, int VEC>
void Launch(const RotaryArgs& a, cudaStream_t stream) {
  const int64_t work = a.slots * a.heads * (a.head_dim / VEC);
  const int threads =
      static_cast<int>(std::min<int64_t>(kMaxThreads, std::max<int64_t>(32, (work + 31) / 32 * 32)));
  RotaryKernel<T, VEC><<<static_cast<unsigned>(a.batch * a.seq), threads, 0, stream>>>(a);
}

}  // namespace

cudaError_t RotaryTranspose(Dtype dtype, const RotaryArgs& args, cudaStream_t stream) {
  if (args.batch * args.seq == 0 || args.slots == 0) return cudaSuccess;
  if (args.head_dim % 2 != 0 || args.slots > 3) return cudaErrorInvalidValue;
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    constexpr int kVec = 16 / sizeof(scalar_t);
    if (CanVectorize<scalar_t>(args, kVec)) {
      Launch<scalar_t, kVec>(args, stream);
    } else if (CanVectorize<scalar_t>(args, 2)) {
      Launch<scalar_t, 2>(args, stream);
    } else {
      return cudaErrorMisalignedAddress;
    }
  });
  return cudaGetLastError();
}

}  // namespace gauntlet::kernels
