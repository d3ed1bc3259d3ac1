#include "trainer/kernels/test_util.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace gauntlet::kernels::testing {

bool HaveGpu() {
#if GAUNTLET_CUDA
  return torch::cuda::is_available();
#else
  return false;
#endif
}

std::string NoGpuMessage() {
#if GAUNTLET_CUDA
  return "no GPU visible: CUDA cases skipped; they run on a GPU machine "
         "(scripts/stage_device.sh here, then scripts/device_perf.sh there; results in "
         "docs/BENCHMARKS.md)";
#else
  return "CPU-only build: CUDA cases skipped; they need --config=cuda and a GPU "
         "(scripts/stage_device.sh, then scripts/device_perf.sh on the GPU machine)";
#endif
}

double RelErr(const torch::Tensor& out, const torch::Tensor& ref) {
  if (!out.defined() || !ref.defined() || out.sizes() != ref.sizes()) {
    return std::numeric_limits<double>::infinity();
  }
  const torch::Tensor o = out.detach().to(torch::kCPU, torch::kFloat64);
  const torch::Tensor r = ref.detach().to(torch::kCPU, torch::kFloat64);
  if (!torch::isfinite(o).all().item<bool>() || !torch::isfinite(r).all().item<bool>()) {
    return std::numeric_limits<double>::infinity();
  }
  const double diff = (o - r).norm().item<double>();
  const double scale = r.norm().item<double>();
  return scale > 0 ? diff / scale : diff;
}

void PoisonAllocator(const torch::Device& device, const std::vector<int64_t>& bytes) {
  std::vector<torch::Tensor> blocks;
  for (int64_t b : bytes) {
    // fp32 NaN bytes also read as NaN in bf16 (0x7fc0 halves).
    blocks.push_back(torch::full({(b + 3) / 4}, std::numeric_limits<float>::quiet_NaN(),
                                 torch::TensorOptions().device(device)));
  }
}

bool Report(const std::string& op, const std::string& case_name,
            const std::vector<std::pair<std::string, double>>& errors, double tolerance) {
  bool ok = true;
  std::string line = "[kernel] " + op + " " + case_name + ":";
  for (const auto& [name, err] : errors) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), " %s=%.2e", name.c_str(), err);
    line += buf;
    ok = ok && err <= tolerance;
  }
  char tol[48];
  std::snprintf(tol, sizeof(tol), " (tol %.0e) ", tolerance);
  line += tol;
  line += ok ? "PASS" : "FAIL";
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  return ok;
}

double MaxGradCheckError(
    const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& fn,
    const std::vector<torch::Tensor>& inputs, double step) {
  torch::manual_seed(1234);
  const torch::Tensor probe = torch::randn_like(fn(inputs).detach());
  const auto scalar = [&](const std::vector<torch::Tensor>& in) {
    return (fn(in) * probe).sum();
  };
  std::vector<torch::Tensor> grad_inputs;
  for (const auto& t : inputs) {
    if (t.requires_grad()) grad_inputs.push_back(t);
  }
  const std::vector<torch::Tensor> analytic =
      torch::autograd::grad({scalar(inputs)}, grad_inputs);
  double worst = 0;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < grad_inputs.size(); ++i) {
    torch::Tensor flat = grad_inputs[i].view({-1});
    const torch::Tensor a = analytic[i].reshape({-1});
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double orig = flat[j].item<double>();
      flat[j] = orig + step;
      const double up = scalar(inputs).item<double>();
      flat[j] = orig - step;
      const double down = scalar(inputs).item<double>();
      flat[j] = orig;
      worst = std::max(worst, std::abs((up - down) / (2 * step) - a[j].item<double>()));
    }
  }
  return worst;
}

}  // namespace gauntlet::kernels::testing
