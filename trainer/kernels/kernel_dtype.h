#ifndef GAUNTLET_TRAINER_KERNELS_KERNEL_DTYPE_H_
#define GAUNTLET_TRAINER_KERNELS_KERNEL_DTYPE_H_

// Element types the CUDA launchers accept. Plain C++ so that .cu files (compiled by nvcc without
// torch headers) and the ATen wrappers share one definition.

namespace gauntlet::kernels {

// fp16 is left to the ATen fallbacks: the trainer autocasts to bf16.
enum class Dtype { kFloat32, kBFloat16 };

}  // namespace gauntlet::kernels

#endif  // GAUNTLET_TRAINER_KERNELS_KERNEL_DTYPE_H_
