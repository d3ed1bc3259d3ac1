#ifndef GAUNTLET_TRAINER_KERNELS_TEST_UTIL_H_
#define GAUNTLET_TRAINER_KERNELS_TEST_UTIL_H_

// Shared by the kernel tests: GPU detection, error norms, allocator poisoning, finite-difference
// gradient checks and one-line case reports.

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace gauntlet::kernels::testing {

// True when this is a CUDA build and a GPU is visible.
bool HaveGpu();

// The message a CUDA case skips with when HaveGpu() is false.
std::string NoGpuMessage();

// ||out - ref|| / ||ref|| in fp64 (||out|| when ref is all zeros); inf when either holds a
// NaN/inf or the shapes differ, so poisoned (never written) outputs fail.
double RelErr(const torch::Tensor& out, const torch::Tensor& ref);

// Fills cached allocator blocks of these byte sizes on `device` with NaN and frees them, so the
// next allocations of those sizes (the op's outputs) start out as NaN.
void PoisonAllocator(const torch::Device& device, const std::vector<int64_t>& bytes);

// Prints "[kernel] op case: name=err (tol) ... PASS|FAIL" and returns whether all passed.
bool Report(const std::string& op, const std::string& case_name,
            const std::vector<std::pair<std::string, double>>& errors, double tolerance);

// Central-difference check of fn's autograd gradients w.r.t. `inputs` (float64, requires_grad)
// for the scalar sum(fn(inputs) * probe), probe fixed random. Returns the largest absolute
// difference between analytic and numeric gradients.
double MaxGradCheckError(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& fn,
    const std::vector<torch::Tensor>& inputs, double step = 1e-6);

}  // namespace gauntlet::kernels::testing

#endif  // GAUNTLET_TRAINER_KERNELS_TEST_UTIL_H_
