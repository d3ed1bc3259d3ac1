#include "trainer/kernels/gelu_ffn.h"

#include <ATen/autocast_mode.h>

#include "trainer/kernels/aten_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/cuda/CUDAException.h>

#include "trainer/kernels/gelu_ffn_cuda.h"
#endif

namespace gauntlet::kernels {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void CheckShapes(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& b1,
                 const torch::Tensor& w2, const torch::Tensor& b2) {
  TORCH_CHECK(x.dim() >= 1 && w1.dim() == 2 && w2.dim() == 2, "GeluFfn: x (..., d), w1 (d_ff, d) "
              "and w2 (d, d_ff) expected, got ", x.sizes(), ", ", w1.sizes(), ", ", w2.sizes());
  const int64_t d = x.size(-1);
  const int64_t d_ff = w1.size(0);
  TORCH_CHECK(w1.size(1) == d && w2.size(0) == d && w2.size(1) == d_ff,
              "GeluFfn: weights ", w1.sizes(), " and ", w2.sizes(), " do not fit d_model ", d);
  TORCH_CHECK(!b1.defined() || b1.sizes() == torch::IntArrayRef{d_ff}, "GeluFfn: b1 must be (",
              d_ff, "), got ", b1.sizes());
  TORCH_CHECK(!b2.defined() || b2.sizes() == torch::IntArrayRef{d}, "GeluFfn: b2 must be (", d,
              "), got ", b2.sizes());
}

#if GAUNTLET_CUDA
// a @ b with the product rounded once into `dtype`: bf16 operands accumulate in fp32 and land in
// a float32 parameter's gradient without a separate cast pass.
torch::Tensor MatmulInto(const torch::Tensor& a, const torch::Tensor& b, torch::ScalarType dtype) {
  if (a.scalar_type() == dtype) return at::mm(a, b);
  if (dtype == torch::kFloat32) return at::mm(a, b, dtype);
  return at::mm(a, b).to(dtype);
}

torch::Tensor ColumnSumOf(const torch::Tensor& x2, torch::ScalarType dtype) {
  const int64_t rows = x2.size(0);
  const int64_t cols = x2.size(1);
  torch::Tensor sum = torch::empty({cols}, x2.options().dtype(torch::kFloat32));
  torch::Tensor scratch = torch::empty({ColumnSumScratchFloats(rows, cols)}, sum.options());
  C10_CUDA_CHECK(ColumnSum(KernelDtype(x2), x2.data_ptr(), scratch.data_ptr<float>(),
                           sum.data_ptr<float>(), rows, cols, at::cuda::getCurrentCUDAStream()));
  return sum.to(dtype);
}

class GeluFfnFunction : public torch::autograd::Function<GeluFfnFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& w1, const torch::Tensor& b1,
                               const torch::Tensor& w2, const torch::Tensor& b2) {
    // The casts to the GEMM dtype are explicit here, so the backward knows them.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
    const torch::ScalarType gemm = x.scalar_type();
    const torch::Tensor x2 = x.reshape({-1, x.size(-1)});
    const torch::Tensor w1c = w1.to(gemm);
    const torch::Tensor w2c = w2.to(gemm);
    // at::linear puts each bias in cuBLASLt's epilogue.
    const torch::Tensor pre = at::linear(x2, w1c, b1.to(gemm));
    const torch::Tensor act = at::gelu(pre);
    torch::Tensor y = at::linear(act, w2c, b2.to(gemm));
    ctx->save_for_backward({x2, pre, act, w1c, w2c});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(w1.scalar_type());
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(b1.scalar_type());
    ctx->saved_data["x_sizes"] = x.sizes().vec();
    return y.view(x.sizes());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x2 = saved[0];
    const torch::Tensor& pre = saved[1];
    const torch::Tensor& act = saved[2];
    const torch::Tensor& w1c = saved[3];
    const torch::Tensor& w2c = saved[4];
    const auto weight_dtype = static_cast<torch::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    const auto bias_dtype = static_cast<torch::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
    const torch::Tensor dy = grads[0].to(x2.scalar_type()).reshape({-1, x2.size(1)}).contiguous();

    const torch::Tensor db2 = ColumnSumOf(dy, bias_dtype);
    const torch::Tensor dw2 = MatmulInto(dy.t(), act, weight_dtype);
    const torch::Tensor dact = at::mm(dy, w2c);

    const int64_t rows = pre.size(0);
    const int64_t cols = pre.size(1);
    torch::Tensor dpre = torch::empty_like(pre);
    torch::Tensor db1 = torch::empty({cols}, pre.options().dtype(torch::kFloat32));
    torch::Tensor scratch = torch::empty({ColumnSumScratchFloats(rows, cols)}, db1.options());
    C10_CUDA_CHECK(GeluBackwardColumnSum(KernelDtype(pre), dact.data_ptr(), pre.data_ptr(),
                                         dpre.data_ptr(), scratch.data_ptr<float>(),
                                         db1.data_ptr<float>(), rows, cols,
                                         at::cuda::getCurrentCUDAStream()));
    const torch::Tensor dw1 = MatmulInto(dpre.t(), x2, weight_dtype);
    const torch::Tensor dx = at::mm(dpre, w1c).view(ctx->saved_data["x_sizes"].toIntVector());
    return {dx, dw1, db1.to(bias_dtype), dw2, db2};
  }
};
#endif  // GAUNTLET_CUDA

}  // namespace

torch::Tensor GeluFfnReference(const torch::Tensor& x, const torch::Tensor& w1,
                               const torch::Tensor& b1, const torch::Tensor& w2,
                               const torch::Tensor& b2) {
  CheckShapes(x, w1, b1, w2, b2);
  return at::linear(at::gelu(at::linear(x, w1, b1)), w2, b2);
}

torch::Tensor GeluFfn(const torch::Tensor& x, const torch::Tensor& w1, const torch::Tensor& b1,
                      const torch::Tensor& w2, const torch::Tensor& b2) {
  CheckShapes(x, w1, b1, w2, b2);
#if GAUNTLET_CUDA
  const c10::DeviceType type = x.device().type();
  const torch::ScalarType gemm = at::autocast::is_autocast_enabled(type)
                                     ? at::autocast::get_autocast_dtype(type)
                                     : x.scalar_type();
  if (KernelEligible(x) && b1.defined() && b2.defined() && x.numel() > 0 &&
      (gemm == torch::kFloat32 || gemm == torch::kBFloat16) &&
      w1.scalar_type() == w2.scalar_type() && b1.scalar_type() == b2.scalar_type()) {
    return GeluFfnFunction::apply(x.to(gemm).contiguous(), w1, b1, w2, b2);
  }
#endif
  return GeluFfnReference(x, w1, b1, w2, b2);
}

}  // namespace gauntlet::kernels
