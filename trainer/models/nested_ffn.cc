#include "trainer/models/nested_ffn.h"

#include <torch/torch.h>

#include "trainer/models/layers.h"

namespace gauntlet {

NestedGeluFfnImpl::NestedGeluFfnImpl(int64_t d_model, int64_t d_hidden) : d_hidden_(d_hidden) {
  fc1_ = register_module("fc1", torch::nn::Linear(d_model, d_hidden));
  fc2_ = register_module("fc2", torch::nn::Linear(d_hidden, d_model));
}

torch::Tensor NestedGeluFfnImpl::forward(const torch::Tensor& x, int64_t width) {
  TORCH_CHECK(width > 0 && width <= d_hidden_, "nested FFN width ", width, " outside [1, ",
              d_hidden_, "]");
  if (width == d_hidden_) return ApplyGeluFfn(*fc1_, *fc2_, x);
  // Prefix views of the weights: no copy; the gradient lands in the first `width` units only.
  // at::linear, not F::linear: the bias goes into the GEMM epilogue (see ApplyLinear).
  const torch::Tensor hidden =
      torch::gelu(at::linear(x, fc1_->weight.narrow(0, 0, width), fc1_->bias.narrow(0, 0, width)));
  return at::linear(hidden, fc2_->weight.narrow(1, 0, width), fc2_->bias);
}

torch::Tensor NestedGeluFfnImpl::ForwardMasked(const torch::Tensor& x, const torch::Tensor& units) {
  const torch::Tensor hidden = torch::gelu(ApplyLinear(*fc1_, x));
  return ApplyLinear(*fc2_, hidden * units.to(hidden.scalar_type()));
}

}  // namespace gauntlet
