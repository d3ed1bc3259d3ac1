#ifndef GAUNTLET_TRAINER_MODELS_NESTED_FFN_H_
#define GAUNTLET_TRAINER_MODELS_NESTED_FFN_H_

#include <torch/torch.h>

#include <cstdint>

namespace gauntlet {

// MatFormer's nested GELU FFN (docs/ARCHITECTURES.md "matformer"): the sub-FFN of hidden width
// m <= d_ff uses the first m hidden units,
//   FFN_m(x) = W_2[:, :m] GELU(W_1[:m, :] x + b_1[:m]) + b_2,
// so every smaller FFN is a prefix of the larger ones. At m = d_ff it is GeluFfn exactly, with the
// same parameters: fc1.{weight,bias}, fc2.{weight,bias}.
class NestedGeluFfnImpl : public torch::nn::Module {
 public:
  NestedGeluFfnImpl(int64_t d_model, int64_t d_hidden);
  torch::Tensor forward(const torch::Tensor& x, int64_t width);
  // forward at a width chosen on the device: `units` (d_hidden,) is 1 on the first m hidden units
  // and 0 after. Runs at full width (no shape depends on m, so a captured CUDA graph can replay
  // it with a different m every time) and equals forward(x, m): the masked units contribute
  // nothing and get zero gradient.
  torch::Tensor ForwardMasked(const torch::Tensor& x, const torch::Tensor& units);
  int64_t d_hidden() const { return d_hidden_; }

 private:
  int64_t d_hidden_;
  torch::nn::Linear fc1_{nullptr};
  torch::nn::Linear fc2_{nullptr};
};
TORCH_MODULE(NestedGeluFfn);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_MODELS_NESTED_FFN_H_
