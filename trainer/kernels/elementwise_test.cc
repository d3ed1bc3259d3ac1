#include "trainer/kernels/elementwise.h"

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

TEST(ElementwiseTest, ResidualAddKeepsTheStreamDtype) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({3, 5, 16});
  const torch::Tensor delta = torch::randn({3, 5, 16}).to(torch::kBFloat16);
  const torch::Tensor out = ResidualAdd(x, delta);
  ASSERT_EQ(out.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(out, x + delta.to(torch::kFloat32)));
  const torch::Tensor d = delta.clone().requires_grad_(true);
  const torch::Tensor s = x.clone().requires_grad_(true);
  (ResidualAdd(s, d) * 3).sum().backward();
  EXPECT_EQ(d.grad().scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(s.grad(), torch::full_like(x, 3)));
  EXPECT_THROW(ResidualAdd(x, torch::randn({3, 5, 15})), c10::Error);
}

TEST(ElementwiseTest, GatedMergeMatchesFormulaAndGradients) {
  torch::manual_seed(1);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
  const torch::Tensor context = torch::randn({2, 3, 4, 6}, opts);  // (B, H, T, Dh)
  const torch::Tensor gate = torch::randn({2, 4, 18}, opts);
  const torch::Tensor out = SigmoidGatedMerge(context, gate);
  // Element (b, t, h * Dh + j) written out by hand.
  const double want = context[1][2][3][5].item<double>() /
                      (1 + std::exp(-gate[1][3][2 * 6 + 5].item<double>()));
  EXPECT_NEAR(out[1][3][2 * 6 + 5].item<double>(), want, 1e-12);
  EXPECT_LT(testing::MaxGradCheckError(
                [](const std::vector<torch::Tensor>& in) { return SigmoidGatedMerge(in[0], in[1]); },
                {context, gate}),
            1e-6);
  EXPECT_THROW(SigmoidGatedMerge(torch::randn({2, 3, 4, 6}), torch::randn({2, 4, 17})),
               c10::Error);
}

// CUDA kernels vs the ATen composites on the same GPU: forward and every gradient.
TEST(ElementwiseTest, CudaKernelsMatchComposites) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
  const torch::Device gpu(torch::kCUDA);
  bool all_ok = true;
  // Residual add: fp32 + bf16 (autocast), and each dtype with itself; odd sizes hit the tail.
  const std::vector<std::pair<torch::ScalarType, torch::ScalarType>> pairs = {
      {torch::kFloat32, torch::kBFloat16},
      {torch::kFloat32, torch::kFloat32},
      {torch::kBFloat16, torch::kBFloat16}};
  for (const auto& [stream_type, delta_type] : pairs) {
    for (int64_t n : {1L, 7L, 1000L, 16384L * 256L + 3L}) {
      torch::manual_seed(n);
      const torch::Tensor x0 = torch::randn({n}, torch::TensorOptions().device(gpu).dtype(stream_type));
      const torch::Tensor d0 = torch::randn({n}, torch::TensorOptions().device(gpu).dtype(delta_type));
      const torch::Tensor g = torch::randn({n}, torch::TensorOptions().device(gpu).dtype(stream_type));
      auto run = [&](bool kernel) {
        torch::Tensor x = x0.clone().requires_grad_(true);
        torch::Tensor d = d0.clone().requires_grad_(true);
        if (kernel) testing::PoisonAllocator(gpu, {n * x0.element_size()});
        const torch::Tensor out = kernel ? ResidualAdd(x, d) : ResidualAddReference(x, d);
        std::vector<torch::Tensor> grads = torch::autograd::grad({out}, {x, d}, {g});
        return std::vector<torch::Tensor>{out, grads[0], grads[1]};
      };
      const auto got = run(true);
      const auto want = run(false);
      const std::string name = std::string(stream_type == torch::kFloat32 ? "fp32" : "bf16") +
                               "+" + (delta_type == torch::kFloat32 ? "fp32" : "bf16") + " n=" +
                               std::to_string(n);
      // Exact: one fp32 add rounded once, in both.
      all_ok &= Report("residual_add", name,
                       {{"out", RelErr(got[0], want[0])},
                        {"dx", RelErr(got[1], want[1])},
                        {"ddelta", RelErr(got[2], want[2])}},
                       0.0);
    }
  }
  // Gate: contiguous (B, H, T, Dh) context, and SDPA's (B, T, H, Dh) storage seen transposed.
  struct GateCase {
    int64_t batch, heads, seq, dh;
    bool transposed;
  };
  const std::vector<GateCase> cases = {{16, 4, 1024, 64, true},  {16, 4, 1024, 64, false},
                                       {2, 12, 129, 64, true},   {3, 2, 5, 6, true},
                                       {1, 3, 7, 5, false}};
  for (auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    const double tol = dtype == torch::kBFloat16 ? 1e-2 : 1e-5;
    for (const GateCase& c : cases) {
      torch::manual_seed(c.batch * 31 + c.seq);
      const auto opts = torch::TensorOptions().device(gpu).dtype(dtype);
      const torch::Tensor ctx0 =
          c.transposed ? torch::randn({c.batch, c.seq, c.heads, c.dh}, opts).transpose(1, 2)
                       : torch::randn({c.batch, c.heads, c.seq, c.dh}, opts);
      const torch::Tensor gate0 = torch::randn({c.batch, c.seq, c.heads * c.dh}, opts);
      const torch::Tensor g = torch::randn({c.batch, c.seq, c.heads * c.dh}, opts);
      auto run = [&](bool kernel) {
        // Leaves with context's layout, as SDPA's output has it.
        torch::Tensor ctx = ctx0.detach().clone(torch::MemoryFormat::Preserve).requires_grad_(true);
        torch::Tensor gate = gate0.clone().requires_grad_(true);
        const int64_t bytes = gate0.numel() * gate0.element_size();
        if (kernel) testing::PoisonAllocator(gpu, {bytes, bytes});
        const torch::Tensor out =
            kernel ? SigmoidGatedMerge(ctx, gate) : SigmoidGatedMergeReference(ctx, gate);
        std::vector<torch::Tensor> grads = torch::autograd::grad({out}, {ctx, gate}, {g});
        return std::vector<torch::Tensor>{out, grads[0], grads[1]};
      };
      const auto got = run(true);
      const auto want = run(false);
      const std::string name = std::string(dtype == torch::kBFloat16 ? "bf16" : "fp32") + " " +
                               std::to_string(c.batch) + "x" + std::to_string(c.heads) + "x" +
                               std::to_string(c.seq) + "x" + std::to_string(c.dh) +
                               (c.transposed ? " (B,T,H,Dh) storage" : "");
      all_ok &= Report("sigmoid_gated_merge", name,
                       {{"out", RelErr(got[0], want[0])},
                        {"dcontext", RelErr(got[1], want[1])},
                        {"dgate", RelErr(got[2], want[2])}},
                       tol);
    }
  }
  EXPECT_TRUE(all_ok) << "see the FAIL lines above";
}

}  // namespace
}  // namespace gauntlet::kernels
