#include "trainer/kernels/aten_util.h"

#include <cstdlib>
#include <cstring>

namespace gauntlet::kernels {

bool KernelEligible(const torch::Tensor& t) {
#if GAUNTLET_CUDA
  static const bool disabled = [] {
    const char* v = std::getenv("GAUNTLET_DISABLE_KERNELS");
    return v != nullptr && std::strcmp(v, "0") != 0 && *v != '\0';
  }();
  return !disabled && t.is_cuda() &&
         (t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16);
#else
  return false;
#endif
}

Dtype KernelDtype(const torch::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16,
              "no CUDA kernel for dtype ", t.scalar_type());
  return t.scalar_type() == torch::kFloat32 ? Dtype::kFloat32 : Dtype::kBFloat16;
}

}  // namespace gauntlet::kernels
