#ifndef GAUNTLET_TRAINER_KERNELS_ATEN_UTIL_H_
#define GAUNTLET_TRAINER_KERNELS_ATEN_UTIL_H_

// What the ATen wrappers of the CUDA kernels share: when a kernel may run, and the element type
// it runs in.

#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"

#include "trainer/kernels/kernel_dtype.h"

namespace gauntlet::kernels {

// True in a CUDA build when `t` lives on a GPU and has a dtype the kernels implement (fp32, bf16)
// and the GAUNTLET_DISABLE_KERNELS environment variable is unset or "0" (read once; it lets a
// run compare against the ATen composites without rebuilding).
bool KernelEligible(const torch::Tensor& t);

// The kernel element type of an eligible tensor.
Dtype KernelDtype(const torch::Tensor& t);

// Puts the scaled-dot-product-attention backend named by GAUNTLET_SDPA_BACKEND (cudnn, flash,
// efficient or math) first in ATen's priority order, for A/B runs of the attention kernels
// without rebuilding; unset keeps ATen's choice. Returns the backend applied ("" when unset) or
// an error naming the variable.
absl::StatusOr<std::string> ApplySdpaBackendFromEnvironment();

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_ATEN_UTIL_H_
