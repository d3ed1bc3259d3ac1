#include "trainer/kernels/causal_conv.h"

#include "trainer/kernels/aten_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>

#include "trainer/kernels/causal_conv_cuda.h"
#endif

namespace gauntlet::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckArgs(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(x.dim() == 3, "CausalConv: x must be (B, T, d), got ", x.sizes());
  const int64_t d = x.size(2);
  TORCH_CHECK(weight.dim() == 3 && weight.size(0) == d && weight.size(1) == 1 &&
                  weight.size(2) >= 1,
              "CausalConv: weight must be (d, 1, K) with d = ", d, ", got ", weight.sizes());
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == d, "CausalConv: bias must be (", d, "), got ",
              bias.sizes());
  TORCH_CHECK(weight.device() == x.device() && bias.device() == x.device(),
              "CausalConv: weight and bias must be on x's device ", x.device());
}

#if GAUNTLET_CUDA
CausalConvShape ShapeOf(const torch::Tensor& x, int64_t kernel) {
  CausalConvShape s;
  s.batch = x.size(0);
  s.seq = x.size(1);
  s.d = x.size(2);
  s.kernel = static_cast<int>(kernel);
  return s;
}

class CausalConvFunction : public torch::autograd::Function<CausalConvFunction> {
 public:
  // taps: float32 (K, d) contiguous; bias float32 (d).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& taps, const torch::Tensor& bias) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    torch::Tensor out = torch::empty_like(x);
    C10_CUDA_CHECK(CausalConvForward(KernelDtype(x), ShapeOf(x, taps.size(0)), x.data_ptr(),
                                     taps.data_ptr<float>(), bias.data_ptr<float>(),
                                     out.data_ptr(), at::cuda::getCurrentCUDAStream()));
    ctx->save_for_backward({x, taps});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& taps = saved[1];
    const torch::Tensor g = grads[0].to(x.scalar_type()).contiguous();
    const CausalConvShape shape = ShapeOf(x, taps.size(0));
    torch::Tensor dx = torch::empty_like(x);
    torch::Tensor dtaps = torch::empty_like(taps);
    torch::Tensor dbias = torch::empty({x.size(2)}, taps.options());
    torch::Tensor scratch = torch::empty({CausalConvBackwardScratch(shape)}, taps.options());
    C10_CUDA_CHECK(CausalConvBackward(KernelDtype(x), shape, g.data_ptr(), x.data_ptr(),
                                      taps.data_ptr<float>(), dx.data_ptr(),
                                      dtaps.data_ptr<float>(), dbias.data_ptr<float>(),
                                      scratch.data_ptr<float>(),
                                      at::cuda::getCurrentCUDAStream()));
    return {dx, dtaps, dbias};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

torch::Tensor CausalConvReference(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias) {
  CheckArgs(x, weight, bias);
  namespace F = torch::nn::functional;
  const int64_t kernel = weight.size(2);
  const int64_t seq_len = x.size(1);
  const torch::Tensor padded = F::pad(x, F::PadFuncOptions({0, 0, kernel - 1, 0}));
  const torch::Tensor taps = weight.select(1, 0);  // (d, kernel)
  torch::Tensor out = torch::addcmul(bias, padded.narrow(1, 0, seq_len), taps.select(1, 0));
  for (int64_t j = 1; j < kernel; ++j) {
    out = torch::addcmul(out, padded.narrow(1, j, seq_len), taps.select(1, j));
  }
  return out.to(x.scalar_type());
}

torch::Tensor CausalConv(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
  CheckArgs(x, weight, bias);
#if GAUNTLET_CUDA
  if (KernelEligible(x) && weight.size(2) <= kMaxCausalConvWidth && x.numel() > 0) {
    // (d, 1, K) -> (K, d): a tap's channels contiguous, as the kernels read them. Differentiable,
    // so the tap gradient flows back to the Conv1d layout (and dtype) by autograd.
    const torch::Tensor taps =
        weight.select(1, 0).t().to(torch::kFloat32).contiguous();
    return CausalConvFunction::apply(x.contiguous(), taps, bias.to(torch::kFloat32).contiguous());
  }
#endif
  return CausalConvReference(x, weight, bias);
}

}  // namespace gauntlet::kernels
