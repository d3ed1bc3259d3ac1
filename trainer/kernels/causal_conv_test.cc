#include "trainer/kernels/causal_conv.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "trainer/kernels/test_util.h"

namespace gauntlet::kernels {
namespace {

using testing::HaveGpu;
using testing::RelErr;
using testing::Report;

// The definition written out with an explicit loop over taps, in float64.
torch::Tensor Formula(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const torch::Tensor xd = x.to(torch::kFloat64);
  const int64_t seq = x.size(1), kernel = weight.size(2);
  torch::Tensor out = bias.to(torch::kFloat64).expand_as(xd).clone();
  for (int64_t t = 0; t < seq; ++t) {
    for (int64_t j = 0; j < kernel; ++j) {
      const int64_t s = t - (kernel - 1) + j;
      if (s < 0) continue;
      out.select(1, t) += xd.select(1, s) * weight.select(1, 0).select(1, j).to(torch::kFloat64);
    }
  }
  return out;
}

TEST(CausalConvTest, FallbackMatchesFormulaAndGradients) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({2, 7, 5});
  const torch::Tensor w = torch::randn({5, 1, 3});
  const torch::Tensor b = torch::randn({5});
  EXPECT_LT(RelErr(CausalConv(x, w, b), Formula(x, w, b)), 1e-6);
  // Causal: changing the last position changes nothing before it.
  torch::Tensor x2 = x.clone();
  x2.select(1, 6).add_(1.0);
  EXPECT_TRUE(torch::equal(CausalConv(x2, w, b).narrow(1, 0, 6), CausalConv(x, w, b).narrow(1, 0, 6)));
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
  EXPECT_LT(testing::MaxGradCheckError(
                [](const std::vector<torch::Tensor>& in) { return CausalConv(in[0], in[1], in[2]); },
                {torch::randn({2, 6, 4}, opts), torch::randn({4, 1, 3}, opts),
                 torch::randn({4}, opts)}),
            1e-6);
  EXPECT_THROW(CausalConv(x, torch::randn({4, 1, 3}), b), c10::Error);
}

// CUDA kernels vs the ATen composite on the same GPU: forward and every gradient.
TEST(CausalConvTest, CudaKernelMatchesComposite) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
  const torch::Device gpu(torch::kCUDA);
  struct Case {
    int64_t batch, seq, d, kernel;
  };
  const std::vector<Case> cases = {{16, 1024, 256, 3}, {2, 129, 768, 4}, {3, 5, 6, 3},
                                   {1, 2, 8, 8},       {4, 33, 40, 1},   {2, 64, 128, 2}};
  bool all_ok = true;
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const double tol = dtype == torch::kFloat32 ? 1e-5 : 1e-2;
    for (const Case& c : cases) {
      torch::manual_seed(c.seq * 13 + c.d);
      const auto opts = torch::TensorOptions().device(gpu);
      const torch::Tensor x0 = torch::randn({c.batch, c.seq, c.d}, opts.dtype(dtype));
      const torch::Tensor w0 = torch::randn({c.d, 1, c.kernel}, opts) * 0.5;
      const torch::Tensor b0 = torch::randn({c.d}, opts);
      const torch::Tensor g = torch::randn({c.batch, c.seq, c.d}, opts.dtype(dtype));
      auto run = [&](bool kernel) {
        torch::Tensor x = x0.clone().requires_grad_(true);
        torch::Tensor w = w0.clone().requires_grad_(true);
        torch::Tensor b = b0.clone().requires_grad_(true);
        if (kernel) testing::PoisonAllocator(gpu, {x0.numel() * x0.element_size()});
        const torch::Tensor out = kernel ? CausalConv(x, w, b) : CausalConvReference(x, w, b);
        std::vector<torch::Tensor> grads = torch::autograd::grad({out}, {x, w, b}, {g});
        return std::vector<torch::Tensor>{out, grads[0], grads[1], grads[2]};
      };
      const auto got = run(true);
      const auto want = run(false);
      const std::string name = std::string(dtype == torch::kFloat32 ? "fp32 " : "bf16 ") +
                               std::to_string(c.batch) + "x" + std::to_string(c.seq) + "x" +
                               std::to_string(c.d) + " K=" + std::to_string(c.kernel);
      all_ok &= Report("causal_conv", name,
                       {{"out", RelErr(got[0], want[0])},
                        {"dx", RelErr(got[1], want[1])},
                        {"dweight", RelErr(got[2], want[2])},
                        {"dbias", RelErr(got[3], want[3])}},
                       tol);
      // The tap/bias reduction runs in a fixed order: a rerun is bit-identical.
      EXPECT_TRUE(torch::equal(run(true)[2], got[2])) << name << ": dweight not deterministic";
    }
  }
  EXPECT_TRUE(all_ok) << "see the FAIL lines above";
}

}  // namespace
}  // namespace gauntlet::kernels
