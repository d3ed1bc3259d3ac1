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

void CheckDelta(const torch::Tensor& x, const torch::Tensor& delta) {
  TORCH_CHECK(delta.sizes() == x.sizes(), "AddRmsNorm: delta must have x's shape ", x.sizes(),
              ", got ", delta.sizes());
  TORCH_CHECK(delta.is_floating_point(), "AddRmsNorm: delta must be floating point, got ",
              delta.scalar_type());
  TORCH_CHECK(delta.device() == x.device(), "AddRmsNorm: delta is on ", delta.device(),
              ", x on ", x.device());
}

#if GAUNTLET_CUDA
RmsNormTypes TypesOf(const torch::Tensor& x, torch::ScalarType delta, torch::ScalarType out) {
  return {KernelDtype(x), delta == torch::kFloat32 ? Dtype::kFloat32 : Dtype::kBFloat16,
          out == torch::kFloat32 ? Dtype::kFloat32 : Dtype::kBFloat16};
}

// Whether the kernels implement this combination (the ATen composite runs otherwise).
bool Eligible(const torch::Tensor& x, torch::ScalarType delta, torch::ScalarType out) {
  const auto kernel_type = [](torch::ScalarType t) {
    return t == torch::kFloat32 || t == torch::kBFloat16;
  };
  return KernelEligible(x) && x.numel() > 0 && kernel_type(delta) && kernel_type(out) &&
         RmsNormTypesSupported(TypesOf(x, delta, out));
}

// Forward of both ops on flattened contiguous (rows, d) tensors; delta undefined for plain norm.
// Returns {sum (undefined without delta), y, rstd}.
std::vector<torch::Tensor> ForwardCuda(const torch::Tensor& x, const torch::Tensor& delta,
                                       const torch::Tensor& w, torch::ScalarType out_dtype) {
  const int64_t d = x.size(-1);
  const int64_t rows = x.numel() / d;
  torch::Tensor sum = delta.defined() ? torch::empty_like(x) : torch::Tensor();
  torch::Tensor y = torch::empty_like(x, x.options().dtype(out_dtype));
  torch::Tensor rstd = torch::empty({rows}, x.options().dtype(torch::kFloat32));
  const RmsNormTypes types =
      TypesOf(x, delta.defined() ? delta.scalar_type() : x.scalar_type(), out_dtype);
  C10_CUDA_CHECK(RmsNormForward(types, x.data_ptr(), delta.defined() ? delta.data_ptr() : nullptr,
                                w.data_ptr(), sum.defined() ? sum.data_ptr() : nullptr,
                                y.data_ptr(), rstd.data_ptr<float>(), rows, d, FLT_EPSILON,
                                at::cuda::getCurrentCUDAStream()));
  return {sum, y, rstd};
}

struct BackwardResult {
  torch::Tensor dx;      // the stream's gradient
  torch::Tensor ddelta;  // the branch's, in delta_dtype (dx itself when the dtypes agree)
  torch::Tensor dw;
};

// Gradients of y = RmsNorm(x) with saved rstd; dres (may be undefined) is added to dx.
BackwardResult BackwardCuda(torch::Tensor dy, torch::Tensor dres, const torch::Tensor& x,
                            const torch::Tensor& w, const torch::Tensor& rstd,
                            torch::ScalarType delta_dtype, torch::ScalarType out_dtype) {
  const int64_t d = x.size(-1);
  const int64_t rows = x.numel() / d;
  const bool separate_ddelta = delta_dtype != x.scalar_type();
  if (!dy.defined()) {
    // Only the sum output was used: the norm contributes nothing.
    torch::Tensor dx = dres.defined() ? dres : torch::zeros_like(x);
    return {dx, separate_ddelta ? dx.to(delta_dtype) : dx, torch::zeros_like(w)};
  }
  dy = dy.to(out_dtype).contiguous();
  if (dres.defined()) dres = dres.to(x.scalar_type()).contiguous();
  torch::Tensor dx = torch::empty_like(x);
  torch::Tensor ddelta = separate_ddelta ? torch::empty_like(x, x.options().dtype(delta_dtype)) : dx;
  torch::Tensor dw = torch::empty_like(w);
  torch::Tensor scratch =
      torch::empty({RmsNormBackwardScratch(rows, d)}, x.options().dtype(torch::kFloat32));
  C10_CUDA_CHECK(RmsNormBackward(TypesOf(x, delta_dtype, out_dtype), dy.data_ptr(),
                                 dres.defined() ? dres.data_ptr() : nullptr, x.data_ptr(),
                                 w.data_ptr(), rstd.data_ptr<float>(), dx.data_ptr(),
                                 separate_ddelta ? ddelta.data_ptr() : nullptr, dw.data_ptr(),
                                 scratch.data_ptr<float>(), rows, d,
                                 at::cuda::getCurrentCUDAStream()));
  return {dx, ddelta, dw};
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w, int64_t out_dtype) {
    // The op picks its own precision: autocast must not re-cast anything inside it.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    const auto out_type = static_cast<torch::ScalarType>(out_dtype);
    std::vector<torch::Tensor> out = ForwardCuda(x, torch::Tensor(), w, out_type);
    ctx->save_for_backward({x, w, out[2]});
    ctx->saved_data["out_dtype"] = out_dtype;
    return out[1];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const auto out_type = static_cast<torch::ScalarType>(ctx->saved_data["out_dtype"].toInt());
    BackwardResult r = BackwardCuda(grads[0], torch::Tensor(), saved[0], saved[1], saved[2],
                                    saved[0].scalar_type(), out_type);
    return {r.dx, r.dw, torch::Tensor()};
  }
};

class AddRmsNormFunction : public torch::autograd::Function<AddRmsNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& delta, const torch::Tensor& w,
                               int64_t out_dtype) {
    // The op picks its own precision: autocast must not re-cast anything inside it.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    const auto out_type = static_cast<torch::ScalarType>(out_dtype);
    std::vector<torch::Tensor> out = ForwardCuda(x, delta, w, out_type);
    ctx->save_for_backward({out[0], w, out[2]});
    ctx->saved_data["out_dtype"] = out_dtype;
    ctx->saved_data["delta_dtype"] = static_cast<int64_t>(delta.scalar_type());
    return {out[0], out[1]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const auto out_type = static_cast<torch::ScalarType>(ctx->saved_data["out_dtype"].toInt());
    const auto delta_type =
        static_cast<torch::ScalarType>(ctx->saved_data["delta_dtype"].toInt());
    // d(sum)/dx = d(sum)/d(delta) = 1: both inputs get the same gradient, as ATen's add does,
    // the branch's rounded to its own dtype.
    BackwardResult r =
        BackwardCuda(grads[1], grads[0], saved[0], saved[1], saved[2], delta_type, out_type);
    return {r.dx, r.ddelta, r.dw, torch::Tensor()};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

torch::Tensor RmsNormReference(const torch::Tensor& x, const torch::Tensor& weight,
                               std::optional<torch::ScalarType> out_dtype) {
  CheckArgs("RmsNorm", x, weight);
  return at::rms_norm(x, {x.size(-1)}, weight.to(x.scalar_type()))
      .to(out_dtype.value_or(x.scalar_type()));
}

AddRmsNormResult AddRmsNormReference(const torch::Tensor& x, const torch::Tensor& delta,
                                     const torch::Tensor& weight,
                                     std::optional<torch::ScalarType> out_dtype) {
  CheckDelta(x, delta);
  // Type promotion adds in the wider type; the stream keeps x's.
  torch::Tensor sum = (x + delta).to(x.scalar_type());
  return {sum, RmsNormReference(sum, weight, out_dtype)};
}

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight,
                      std::optional<torch::ScalarType> out_dtype) {
  CheckArgs("RmsNorm", x, weight);
#if GAUNTLET_CUDA
  const torch::ScalarType out = out_dtype.value_or(x.scalar_type());
  if (Eligible(x, x.scalar_type(), out)) {
    return RmsNormFunction::apply(x.contiguous(), weight.to(x.scalar_type()).contiguous(),
                                  static_cast<int64_t>(out));
  }
#endif
  return RmsNormReference(x, weight, out_dtype);
}

AddRmsNormResult AddRmsNorm(const torch::Tensor& x, const torch::Tensor& delta,
                            const torch::Tensor& weight,
                            std::optional<torch::ScalarType> out_dtype) {
  CheckArgs("AddRmsNorm", x, weight);
  CheckDelta(x, delta);
#if GAUNTLET_CUDA
  const torch::ScalarType out = out_dtype.value_or(x.scalar_type());
  if (Eligible(x, delta.scalar_type(), out)) {
    variable_list result = AddRmsNormFunction::apply(
        x.contiguous(), delta.contiguous(), weight.to(x.scalar_type()).contiguous(),
        static_cast<int64_t>(out));
    return {result[0], result[1]};
  }
#endif
  return AddRmsNormReference(x, delta, weight, out_dtype);
}

}  // namespace gauntlet::kernels
