#include "trainer/kernels/linear_cross_entropy.h"

#include <algorithm>
#include <atomic>

#include "trainer/kernels/aten_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>

#include "trainer/kernels/cross_entropy_cuda.h"
#endif

namespace gauntlet::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kChunkLogitBytes = 256LL << 20;

void CheckArgs(const torch::Tensor& hidden, const torch::Tensor& weight,
               const torch::Tensor& targets, const torch::Tensor& row_weights) {
  TORCH_CHECK(hidden.dim() == 2, "LinearCrossEntropy: hidden must be (N, d), got ",
              hidden.sizes());
  const int64_t n = hidden.size(0);
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(1),
              "LinearCrossEntropy: weight must be (V, d) with d = ", hidden.size(1), ", got ",
              weight.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == n &&
                  targets.scalar_type() == torch::kInt64,
              "LinearCrossEntropy: targets must be int64 (N) = (", n, "), got ",
              targets.scalar_type(), " ", targets.sizes());
  TORCH_CHECK(row_weights.dim() == 1 && row_weights.size(0) == n &&
                  row_weights.scalar_type() == torch::kFloat32,
              "LinearCrossEntropy: row_weights must be float32 (N) = (", n, "), got ",
              row_weights.scalar_type(), " ", row_weights.sizes());
  for (const torch::Tensor* t : {&weight, &targets, &row_weights}) {
    TORCH_CHECK(t->device() == hidden.device(), "LinearCrossEntropy: ",
                t == &weight ? "weight" : t == &targets ? "targets" : "row_weights", " is on ",
                t->device(), ", hidden on ", hidden.device());
  }
}

#if GAUNTLET_CUDA
int64_t ChunkRows(int64_t rows, int64_t vocab, int64_t element_size, int64_t requested) {
  if (requested > 0) return std::min(requested, std::max<int64_t>(rows, 1));
  const int64_t cap = std::max<int64_t>(1, kChunkLogitBytes / (vocab * element_size));
  const int64_t chunks = (rows + cap - 1) / cap;
  // Equal chunks (rounded up to 64 rows for the GEMMs) rather than a ragged last one.
  const int64_t even = (rows + chunks - 1) / chunks;
  return std::max<int64_t>(1, std::min(rows, (even + 63) / 64 * 64));
}

// acc (fp32) = (first ? 0 : acc) + a @ b for bf16 a, b. Uses cuBLAS's fp32-output GEMM
// (aten::addmm.dtype_out) so the weight gradient is summed over chunks in fp32 rather than
// rounded to bf16 once per chunk; torch builds whose addmm.dtype rejects an fp32 `self` with bf16
// matrices fall back to an fp32 product plus an add (one more pass over the (V, d) buffer).
void AccumulateFp32(torch::Tensor& acc, const torch::Tensor& a, const torch::Tensor& b,
                    bool first) {
  if (a.scalar_type() == torch::kFloat32) {
    if (first) {
      at::mm_out(acc, a, b);
    } else {
      acc.addmm_(a, b);
    }
    return;
  }
  if (first) {
    at::mm_out(acc, a, b, torch::kFloat32);
    return;
  }
  static std::atomic<bool> fused_ok{true};
  if (fused_ok.load()) {
    try {
      at::addmm_out(acc, acc, a, b, torch::kFloat32);
      return;
    } catch (const c10::Error&) {
      fused_ok.store(false);  // argument checks run before any launch: nothing was enqueued
    }
  }
  acc.add_(at::mm(a, b, torch::kFloat32));
}

class LinearCrossEntropyFunction : public torch::autograd::Function<LinearCrossEntropyFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& hidden_in,
                               const torch::Tensor& weight, const torch::Tensor& targets_in,
                               const torch::Tensor& row_weights_in, int64_t chunk_request) {
    // The op picks its own precision: autocast must not re-cast its internal GEMMs.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    const torch::Tensor hidden = hidden_in.contiguous();
    const torch::Tensor targets = targets_in.contiguous();
    const torch::Tensor row_weights = row_weights_in.contiguous();
    const torch::Tensor w = weight.to(hidden.scalar_type()).contiguous();
    const int64_t rows = hidden.size(0);
    const int64_t vocab = w.size(0);
    const bool need_h = hidden_in.requires_grad();
    const bool need_w = weight.requires_grad();
    const bool write_grad = need_h || need_w;
    const int64_t chunk = ChunkRows(rows, vocab, hidden.element_size(), chunk_request);

    torch::Tensor loss_rows = torch::empty({rows}, hidden.options().dtype(torch::kFloat32));
    torch::Tensor grad_h = need_h ? torch::empty_like(hidden) : torch::Tensor();
    torch::Tensor grad_w32 = need_w ? torch::empty({vocab, w.size(1)},
                                                   w.options().dtype(torch::kFloat32))
                                    : torch::Tensor();
    if (need_w && rows == 0) grad_w32.zero_();
    torch::Tensor logits = torch::empty({chunk, vocab}, hidden.options());
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    for (int64_t start = 0; start < rows; start += chunk) {
      const int64_t n = std::min(chunk, rows - start);
      const torch::Tensor h_c = hidden.narrow(0, start, n);
      torch::Tensor l_c = logits.narrow(0, 0, n);
      at::mm_out(l_c, h_c, w.t());
      C10_CUDA_CHECK(SoftmaxCrossEntropyRows(
          KernelDtype(hidden), l_c.data_ptr(), vocab, targets.data_ptr<int64_t>() + start,
          row_weights.data_ptr<float>() + start, loss_rows.data_ptr<float>() + start, n, vocab,
          write_grad, stream));
      if (need_h) {
        torch::Tensor g_c = grad_h.narrow(0, start, n);
        at::mm_out(g_c, l_c, w);
      }
      if (need_w) AccumulateFp32(grad_w32, l_c.t(), h_c, /*first=*/start == 0);
    }
    // Only defined tensors go into saved_data (an IValue of an undefined tensor reads as None).
    if (need_h) ctx->saved_data["grad_hidden"] = grad_h;
    if (need_w) ctx->saved_data["grad_weight"] = grad_w32.to(weight.scalar_type());
    return loss_rows.sum();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    // grads[0] is 0-dim fp32; multiplying keeps the gradients' dtypes. No host sync.
    const torch::Tensor& go = grads[0];
    const auto saved = [&](const char* key) {
      auto it = ctx->saved_data.find(key);
      return it == ctx->saved_data.end() ? torch::Tensor() : it->second.toTensor();
    };
    const torch::Tensor grad_h = saved("grad_hidden");
    const torch::Tensor grad_w = saved("grad_weight");
    return {grad_h.defined() ? grad_h * go : grad_h, grad_w.defined() ? grad_w * go : grad_w,
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

torch::Tensor LinearCrossEntropyReference(const torch::Tensor& hidden, const torch::Tensor& weight,
                                          const torch::Tensor& targets,
                                          const torch::Tensor& row_weights) {
  CheckArgs(hidden, weight, targets, row_weights);
  const torch::Tensor logits = at::mm(hidden, weight.to(hidden.scalar_type()).t());
  const torch::Tensor per_row = torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32), targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  // Rows of weight 0 contribute 0, also to the gradient (0 * finite).
  return (per_row * row_weights).sum();
}

torch::Tensor LinearCrossEntropy(const torch::Tensor& hidden, const torch::Tensor& weight,
                                 const torch::Tensor& targets, const torch::Tensor& row_weights,
                                 const LinearCrossEntropyOptions& options) {
  CheckArgs(hidden, weight, targets, row_weights);
  TORCH_CHECK(options.chunk_rows >= 0, "LinearCrossEntropy: chunk_rows must be >= 0, got ",
              options.chunk_rows);
#if GAUNTLET_CUDA
  if (KernelEligible(hidden) && weight.size(0) > 0 && weight.is_floating_point()) {
    return LinearCrossEntropyFunction::apply(hidden, weight, targets, row_weights,
                                             options.chunk_rows);
  }
#endif
  return LinearCrossEntropyReference(hidden, weight, targets, row_weights);
}

}  // namespace gauntlet::kernels
