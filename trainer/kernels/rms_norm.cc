#include "trainer/kernels/rms_norm.h"

#include <cfloat>

#include "trainer/kernels/aten_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>

#include "trainer/kernels/rms_norm_cuda.h"
#endif

namespace gauntlet::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckArgs(const char* op, const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one axis");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), op,
              ": weight must be (d) = (", x.size(-1), "), got ", weight.sizes());
  TORCH_CHECK(weight.device() == x.device(), op, ": weight is on ", weight.device(),
              ", x on ", x.device());
}

#if GAUNTLET_CUDA
// Forward of both ops on flattened contiguous (rows, d) tensors; delta undefined for plain norm.
// Returns {sum (undefined without delta), y, rstd}.
std::vector<torch::Tensor> ForwardCuda(const torch::Tensor& x, const torch::Tensor& delta,
                                       const torch::Tensor& w) {
  const int64_t d = x.size(-1);
  const int64_t rows = x.numel() / d;
  torch::Tensor sum = delta.defined() ? torch::empty_like(x) : torch::Tensor();
  torch::Tensor y = torch::empty_like(x);
  torch::Tensor rstd = torch::empty({rows}, x.options().dtype(torch::kFloat32));
  C10_CUDA_CHECK(RmsNormForward(KernelDtype(x), x.data_ptr(),
                                delta.defined() ? delta.data_ptr() : nullptr, w.data_ptr(),
                                sum.defined() ? sum.data_ptr() : nullptr, y.data_ptr(),
                                rstd.data_ptr<float>(), rows, d, FLT_EPSILON,
                                at::cuda::getCurrentCUDAStream()));
  return {sum, y, rstd};
}

// {dx, dw} for y = RmsNorm(x) with saved rstd; dres (may be undefined) is added to dx.
std::pair<torch::Tensor, torch::Tensor> BackwardCuda(torch::Tensor dy, torch::Tensor dres,
                                                     const torch::Tensor& x,
                                                     const torch::Tensor& w,
                                                     const torch::Tensor& rstd) {
  const int64_t d = x.size(-1);
  const int64_t rows = x.numel() / d;
  if (!dy.defined()) {
    // Only the sum output was used: the norm contributes nothing.
    torch::Tensor dx = dres.defined() ? dres : torch::zeros_like(x);
    return {dx, torch::zeros_like(w)};
  }
  dy = dy.contiguous();
  if (dres.defined()) dres = dres.contiguous();
  torch::Tensor dx = torch::empty_like(x);
  torch::Tensor dw = torch::empty_like(w);
  torch::Tensor scratch =
      torch::empty({RmsNormBackwardScratch(rows, d)}, x.options().dtype(torch::kFloat32));
  C10_CUDA_CHECK(RmsNormBackward(KernelDtype(x), dy.data_ptr(),
                                 dres.defined() ? dres.data_ptr() : nullptr, x.data_ptr(),
                                 w.data_ptr(), rstd.data_ptr<float>(), dx.data_ptr(),
                                 dw.data_ptr(), scratch.data_ptr<float>(), rows, d,
                                 at::cuda::getCurrentCUDAStream()));
  return {dx, dw};
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w) {
    // The op picks its own precision: autocast must not re-cast its internal GEMMs.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    std::vector<torch::Tensor> out = ForwardCuda(x, torch::Tensor(), w);
    ctx->save_for_backward({x, w, out[2]});
    return out[1];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    auto [dx, dw] = BackwardCuda(grads[0], torch::Tensor(), saved[0], saved[1], saved[2]);
    return {dx, dw};
  }
};

class AddRmsNormFunction : public torch::autograd::Function<AddRmsNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& delta, const torch::Tensor& w) {
    // The op picks its own precision: autocast must not re-cast its internal GEMMs.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    std::vector<torch::Tensor> out = ForwardCuda(x, delta, w);
    ctx->save_for_backward({out[0], w, out[2]});
    return {out[0], out[1]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    auto [dx, dw] = BackwardCuda(grads[1], grads[0], saved[0], saved[1], saved[2]);
    // d(sum)/dx = d(sum)/d(delta) = 1: both inputs get the same gradient, as ATen's add does.
    return {dx, dx, dw};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

torch::Tensor RmsNormReference(const torch::Tensor& x, const torch::Tensor& weight) {
  CheckArgs("RmsNorm", x, weight);
  return at::rms_norm(x, {x.size(-1)}, weight.to(x.scalar_type()));
}

AddRmsNormResult AddRmsNormReference(const torch::Tensor& x, const torch::Tensor& delta,
                                     const torch::Tensor& weight) {
  TORCH_CHECK(delta.sizes() == x.sizes() && delta.scalar_type() == x.scalar_type(),
              "AddRmsNorm: delta must match x (", x.sizes(), ", ", x.scalar_type(), "), got ",
              delta.sizes(), ", ", delta.scalar_type());
  torch::Tensor sum = x + delta;
  return {sum, RmsNormReference(sum, weight)};
}

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight) {
  CheckArgs("RmsNorm", x, weight);
#if GAUNTLET_CUDA
  if (KernelEligible(x) && x.numel() > 0) {
    return RmsNormFunction::apply(x.contiguous(), weight.to(x.scalar_type()).contiguous());
  }
#endif
  return RmsNormReference(x, weight);
}

AddRmsNormResult AddRmsNorm(const torch::Tensor& x, const torch::Tensor& delta,
                            const torch::Tensor& weight) {
  CheckArgs("AddRmsNorm", x, weight);
  TORCH_CHECK(delta.sizes() == x.sizes() && delta.scalar_type() == x.scalar_type(),
              "AddRmsNorm: delta must match x (", x.sizes(), ", ", x.scalar_type(), "), got ",
              delta.sizes(), ", ", delta.scalar_type());
  TORCH_CHECK(delta.device() == x.device(), "AddRmsNorm: delta is on ", delta.device(),
              ", x on ", x.device());
#if GAUNTLET_CUDA
  if (KernelEligible(x) && x.numel() > 0) {
    variable_list out = AddRmsNormFunction::apply(
        x.contiguous(), delta.contiguous(), weight.to(x.scalar_type()).contiguous());
    return {out[0], out[1]};
  }
#endif
  return AddRmsNormReference(x, delta, weight);
}

}  // namespace gauntlet::kernels
