#include "trainer/kernels/elementwise.h"

#include "trainer/kernels/aten_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>

#include "trainer/kernels/elementwise_cuda.h"
#endif

namespace gauntlet::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckResidual(const torch::Tensor& stream, const torch::Tensor& delta) {
  TORCH_CHECK(delta.sizes() == stream.sizes(), "ResidualAdd: delta must have the stream's shape ",
              stream.sizes(), ", got ", delta.sizes());
  TORCH_CHECK(stream.is_floating_point() && delta.is_floating_point(),
              "ResidualAdd: floating point tensors expected, got ", stream.scalar_type(), " and ",
              delta.scalar_type());
  TORCH_CHECK(delta.device() == stream.device(), "ResidualAdd: delta is on ", delta.device(),
              ", the stream on ", stream.device());
}

void CheckGate(const torch::Tensor& context, const torch::Tensor& gate) {
  TORCH_CHECK(context.dim() == 4, "SigmoidGatedMerge: context must be (B, H, T, Dh), got ",
              context.sizes());
  const int64_t width = context.size(1) * context.size(3);
  TORCH_CHECK(gate.dim() == 3 && gate.size(0) == context.size(0) &&
                  gate.size(1) == context.size(2) && gate.size(2) == width,
              "SigmoidGatedMerge: gate must be (B, T, H * Dh) = (", context.size(0), ", ",
              context.size(2), ", ", width, "), got ", gate.sizes());
  TORCH_CHECK(gate.device() == context.device(), "SigmoidGatedMerge: gate is on ", gate.device(),
              ", context on ", context.device());
}

#if GAUNTLET_CUDA
class ResidualAddFunction : public torch::autograd::Function<ResidualAddFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& stream,
                               const torch::Tensor& delta) {
    ctx->saved_data["delta_dtype"] = static_cast<int64_t>(delta.scalar_type());
    torch::Tensor out = torch::empty_like(stream);
    C10_CUDA_CHECK(ResidualAddForward(KernelDtype(stream), KernelDtype(delta),
                                      stream.data_ptr(), delta.data_ptr(), out.data_ptr(),
                                      stream.numel(), at::cuda::getCurrentCUDAStream()));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto delta_type =
        static_cast<torch::ScalarType>(ctx->saved_data["delta_dtype"].toInt());
    return {grads[0], grads[0].to(delta_type)};
  }
};

GateArgs ArgsOf(const torch::Tensor& context) {
  GateArgs a;
  a.batch = context.size(0);
  a.heads = context.size(1);
  a.seq = context.size(2);
  a.head_dim = context.size(3);
  for (int i = 0; i < 3; ++i) a.context_stride[i] = context.stride(i);
  return a;
}

class SigmoidGateFunction : public torch::autograd::Function<SigmoidGateFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& context,
                               const torch::Tensor& gate) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    torch::Tensor out = torch::empty_like(gate);
    C10_CUDA_CHECK(SigmoidGateForward(KernelDtype(gate), ArgsOf(context), context.data_ptr(),
                                      gate.data_ptr(), out.data_ptr(),
                                      at::cuda::getCurrentCUDAStream()));
    ctx->save_for_backward({context, gate});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& context = saved[0];
    const torch::Tensor& gate = saved[1];
    const torch::Tensor dout = grads[0].contiguous();
    // context's own strides (SDPA's layout), so attention's backward gets the layout it made;
    // the kernel addresses both through them.
    torch::Tensor dcontext = torch::empty_like(context);
    TORCH_CHECK(dcontext.strides() == context.strides(), "SigmoidGatedMerge: gradient layout");
    torch::Tensor dgate = torch::empty_like(gate);
    C10_CUDA_CHECK(SigmoidGateBackward(KernelDtype(gate), ArgsOf(dcontext), dout.data_ptr(),
                                       context.data_ptr(), gate.data_ptr(), dcontext.data_ptr(),
                                       dgate.data_ptr(), at::cuda::getCurrentCUDAStream()));
    return {dcontext, dgate};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

torch::Tensor ResidualAddReference(const torch::Tensor& stream, const torch::Tensor& delta) {
  CheckResidual(stream, delta);
  // Type promotion adds in the wider type; the stream keeps its own.
  return (stream + delta).to(stream.scalar_type());
}

torch::Tensor ResidualAdd(const torch::Tensor& stream, const torch::Tensor& delta) {
  CheckResidual(stream, delta);
#if GAUNTLET_CUDA
  const bool mixed_ok = delta.scalar_type() == stream.scalar_type() ||
                        (stream.scalar_type() == torch::kFloat32 &&
                         delta.scalar_type() == torch::kBFloat16);
  if (KernelEligible(stream) && KernelEligible(delta) && mixed_ok && stream.numel() > 0) {
    return ResidualAddFunction::apply(stream.contiguous(), delta.contiguous());
  }
#endif
  return ResidualAddReference(stream, delta);
}

torch::Tensor SigmoidGatedMergeReference(const torch::Tensor& context, const torch::Tensor& gate) {
  CheckGate(context, gate);
  const torch::Tensor merged = context.transpose(1, 2).reshape(gate.sizes());
  return merged * torch::sigmoid(gate);
}

torch::Tensor SigmoidGatedMerge(const torch::Tensor& context, const torch::Tensor& gate) {
  CheckGate(context, gate);
#if GAUNTLET_CUDA
  if (KernelEligible(gate) && context.scalar_type() == gate.scalar_type() &&
      context.numel() > 0) {
    // Any dense layout with a contiguous last axis (SDPA's outputs have one) is read in place.
    const torch::Tensor ctx = context.stride(3) == 1 && context.is_non_overlapping_and_dense()
                                  ? context
                                  : context.contiguous();
    return SigmoidGateFunction::apply(ctx, gate.contiguous());
  }
#endif
  return SigmoidGatedMergeReference(context, gate);
}

}  // namespace gauntlet::kernels
