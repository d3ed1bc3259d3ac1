// Softmax cross-entropy over rows of bf16/fp32 logits with the gradient written in place.
// Small vocabularies (<= kWarpVocab): one warp per row. Large ones: one block per row, 16-byte
// loads when the row is aligned, an online max/sum pass, then a second pass (mostly from L2)
// writing the gradient.

#include <algorithm>
#include <cmath>

#include "trainer/kernels/cross_entropy_cuda.h"
#include "trainer/kernels/cuda_common.cuh"

namespace gauntlet::kernels {
namespace {

constexpr int64_t kWarpVocab = 1024;
constexpr int kRowWarps = 8;       // rows per block in the warp-per-row kernel
constexpr int kBlockThreads = 512;  // threads per row in the block-per-row kernel

// Running (max, sum of exp(x - max)) of a stream of values.
struct MaxSum {
  float m = -INFINITY;
  float s = 0.f;
  __device__ __forceinline__ void Add(float x) {
    if (x > m) {
      s = s * __expf(m - x) + 1.f;
      m = x;
    } else {
      s += __expf(x - m);
    }
  }
  __device__ __forceinline__ void Merge(float om, float os) {
    const float nm = fmaxf(m, om);
    if (nm == -INFINITY) return;
    s = s * __expf(m - nm) + os * __expf(om - nm);
    m = nm;
  }
  __device__ __forceinline__ void WarpReduce() {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
      const float om = __shfl_xor_sync(0xffffffffu, m, offset);
      const float os = __shfl_xor_sync(0xffffffffu, s, offset);
      Merge(om, os);
    }
  }
};

__device__ __forceinline__ float RowLoss(float lse, float target_logit, float w, bool valid) {
  if (!valid) return NAN;
  return w * (lse - target_logit);
}

template <typename T>
__global__ void __launch_bounds__(kRowWarps * 32)
    WarpRowKernel(T* logits, int64_t ld, const int64_t* __restrict__ targets,
                  const float* __restrict__ weights, float* __restrict__ loss, int64_t rows,
                  int vocab, bool write_grad) {
  const int lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowWarps + threadIdx.x / 32;
  if (row >= rows) return;
  T* x = logits + row * ld;
  const float w = weights[row];
  const int64_t target = targets[row];
  const bool valid = target >= 0 && target < vocab;
  if (w == 0.f) {
    if (lane == 0) loss[row] = valid ? 0.f : NAN;
    if (write_grad) {
      for (int c = lane; c < vocab; c += 32) x[c] = FromFloat<T>(0.f);
    }
    return;
  }
  MaxSum ms;
  for (int c = lane; c < vocab; c += 32) ms.Add(ToFloat(x[c]));
  ms.WarpReduce();
  const float lse = ms.m + __logf(ms.s);
  if (lane == 0) loss[row] = RowLoss(lse, valid ? ToFloat(x[target]) : 0.f, w, valid);
  if (!write_grad) return;
  __syncwarp();  // every lane has read x[target] before anyone overwrites it
  for (int c = lane; c < vocab; c += 32) {
    const float p = __expf(ToFloat(x[c]) - lse);
    x[c] = FromFloat<T>(w * (p - (c == target ? 1.f : 0.f)));
  }
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kBlockThreads)
    BlockRowKernel(T* logits, int64_t ld, const int64_t* __restrict__ targets,
                   const float* __restrict__ weights, float* __restrict__ loss, int vocab,
                   bool write_grad) {
  __shared__ float red_m[kBlockThreads / 32];
  __shared__ float red_s[kBlockThreads / 32];
  __shared__ float target_logit;
  const int64_t row = blockIdx.x;
  T* x = logits + row * ld;
  const float w = weights[row];
  const int64_t target = targets[row];
  const bool valid = target >= 0 && target < vocab;
  const int n_vec = vocab / VEC;  // VEC divides vocab (the launcher checks)
  if (w == 0.f) {
    if (threadIdx.x == 0) loss[row] = valid ? 0.f : NAN;
    if (write_grad) {
      float zero[VEC];
#pragma unroll
      for (int j = 0; j < VEC; ++j) zero[j] = 0.f;
      for (int i = threadIdx.x; i < n_vec; i += blockDim.x) StoreF<T, VEC>(x + i * VEC, zero);
    }
    return;
  }
  if (threadIdx.x == 0) target_logit = valid ? ToFloat(x[target]) : 0.f;
  MaxSum ms;
  for (int i = threadIdx.x; i < n_vec; i += blockDim.x) {
    float v[VEC];
    LoadF<T, VEC>(x + i * VEC, v);
    // Max of the vector first: one rescale per vector instead of per element.
    float vm = v[0];
#pragma unroll
    for (int j = 1; j < VEC; ++j) vm = fmaxf(vm, v[j]);
    float vs = 0.f;
#pragma unroll
    for (int j = 0; j < VEC; ++j) vs += __expf(v[j] - vm);
    ms.Merge(vm, vs);
  }
  ms.WarpReduce();
  const int warp = threadIdx.x / 32;
  if (threadIdx.x % 32 == 0) {
    red_m[warp] = ms.m;
    red_s[warp] = ms.s;
  }
  __syncthreads();  // also publishes target_logit before the in-place writes below
  MaxSum total;
  for (int i = 0; i < kBlockThreads / 32; ++i) total.Merge(red_m[i], red_s[i]);
  const float lse = total.m + __logf(total.s);
  if (threadIdx.x == 0) loss[row] = RowLoss(lse, target_logit, w, valid);
  if (!write_grad) return;
  for (int i = threadIdx.x; i < n_vec; i += blockDim.x) {
    float v[VEC];
    LoadF<T, VEC>(x + i * VEC, v);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const int c = i * VEC + j;
      v[j] = w * (__expf(v[j] - lse) - (c == target ? 1.f : 0.f));
    }
    StoreF<T, VEC>(x + i * VEC, v);
  }
}

}  // namespace

cudaError_t SoftmaxCrossEntropyRows(Dtype dtype, void* logits, int64_t ld, const int64_t* targets,
                                    const float* row_weights, float* loss, int64_t rows,
                                    int64_t vocab, bool write_grad, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  GAUNTLET_DISPATCH_DTYPE(dtype, {
    auto* x = static_cast<scalar_t*>(logits);
    const int v = static_cast<int>(vocab);
    constexpr int kVec = 16 / sizeof(scalar_t);
    if (vocab <= kWarpVocab) {
      const auto blocks = static_cast<unsigned>((rows + kRowWarps - 1) / kRowWarps);
      WarpRowKernel<scalar_t><<<blocks, kRowWarps * 32, 0, stream>>>(
          x, ld, targets, row_weights, loss, rows, v, write_grad);
    } else if (vocab % kVec == 0 && ld % kVec == 0 && Aligned16(logits)) {
      BlockRowKernel<scalar_t, kVec><<<static_cast<unsigned>(rows), kBlockThreads, 0, stream>>>(
          x, ld, targets, row_weights, loss, v, write_grad);
    } else {
      BlockRowKernel<scalar_t, 1><<<static_cast<unsigned>(rows), kBlockThreads, 0, stream>>>(
          x, ld, targets, row_weights, loss, v, write_grad);
    }
  });
  return cudaGetLastError();
}

}  // namespace gauntlet::kernels
