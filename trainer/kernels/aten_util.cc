#include "trainer/kernels/aten_util.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include <ATen/Context.h>

#include "absl/strings/str_cat.h"

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

absl::StatusOr<std::string> ApplySdpaBackendFromEnvironment() {
  const char* name = std::getenv("GAUNTLET_SDPA_BACKEND");
  if (name == nullptr || *name == '\0') return std::string();
  const std::vector<std::pair<std::string, at::SDPBackend>> backends = {
      {"cudnn", at::SDPBackend::cudnn_attention},
      {"flash", at::SDPBackend::flash_attention},
      {"efficient", at::SDPBackend::efficient_attention},
      {"math", at::SDPBackend::math}};
  std::vector<int64_t> order;
  for (const auto& [backend_name, backend] : backends) {
    if (backend_name == name) order.push_back(static_cast<int64_t>(backend));
  }
  if (order.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GAUNTLET_SDPA_BACKEND: must be cudnn, flash, efficient or math, got \"", name, "\""));
  }
  for (const auto& [backend_name, backend] : backends) {
    if (backend_name != name) order.push_back(static_cast<int64_t>(backend));
  }
  order.push_back(static_cast<int64_t>(at::SDPBackend::overrideable));
  at::globalContext().setSDPPriorityOrder(order);
  return std::string(name);
}

}  // namespace gauntlet::kernels
