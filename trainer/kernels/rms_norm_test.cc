#include "trainer/kernels/rms_norm.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cfloat>
#include <string>
#include <vector>

#include "trainer/kernels/test_util.h"

namespace gauntlet::kernels {
namespace {

using testing::HaveGpu;
using testing::RelErr;
using testing::Report;

// Independent of at::rms_norm: the formula written out in fp64, eps of the accumulation type.
torch::Tensor Formula(const torch::Tensor& x, const torch::Tensor& w) {
  const double eps = x.scalar_type() == torch::kFloat64 ? DBL_EPSILON : FLT_EPSILON;
  const torch::Tensor xd = x.to(torch::kFloat64);
  const torch::Tensor r = torch::rsqrt(xd.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return (xd * r * w.to(x.scalar_type()).to(torch::kFloat64)).to(x.scalar_type());
}

TEST(RmsNormTest, FallbackMatchesFormula) {
  torch::manual_seed(0);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const torch::Tensor x = torch::randn({5, 7, 48}).to(dtype);
    const torch::Tensor delta = torch::randn({5, 7, 48}).to(dtype);
    const torch::Tensor w = torch::randn({48});
    const double tol = dtype == torch::kFloat32 ? 1e-6 : 1e-2;
    EXPECT_LT(RelErr(RmsNorm(x, w), Formula(x, w)), tol);
    const AddRmsNormResult out = AddRmsNorm(x, delta, w);
    EXPECT_EQ(RelErr(out.sum, x + delta), 0);
    EXPECT_LT(RelErr(out.normed, Formula(x + delta, w)), tol);
  }
}

TEST(RmsNormTest, MixedDtypesFollowTheStream) {
  // A float32 stream with a bf16 branch and a bf16 output: the sum is exact float32 arithmetic
  // on the widened branch, and the output is the float32 norm rounded once.
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({4, 6, 32});
  const torch::Tensor delta = torch::randn({4, 6, 32}).to(torch::kBFloat16);
  const torch::Tensor w = torch::randn({32});
  const AddRmsNormResult out = AddRmsNorm(x, delta, w, torch::kBFloat16);
  ASSERT_EQ(out.sum.scalar_type(), torch::kFloat32);
  ASSERT_EQ(out.normed.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(out.sum, x + delta.to(torch::kFloat32)));
  EXPECT_LT(RelErr(out.normed, Formula(out.sum, w).to(torch::kBFloat16)), 1e-2);
  EXPECT_EQ(RmsNorm(x, w, torch::kBFloat16).scalar_type(), torch::kBFloat16);
  // The branch's gradient comes back in its own dtype.
  const torch::Tensor d = delta.clone().requires_grad_(true);
  AddRmsNorm(x, d, w, torch::kBFloat16).normed.to(torch::kFloat32).sum().backward();
  EXPECT_EQ(d.grad().scalar_type(), torch::kBFloat16);
}

TEST(RmsNormTest, EpsIsFloatEpsilonForBf16) {
  // Tiny inputs make eps dominate: bf16's own epsilon (2^-7) would give ~0.001, not ~0.28.
  const torch::Tensor x = torch::full({1, 4}, 1e-4, torch::kBFloat16);
  const float y = RmsNorm(x, torch::ones({4})).to(torch::kFloat32)[0][0].item<float>();
  EXPECT_NEAR(y, 1e-4 / std::sqrt(1e-8 + FLT_EPSILON), 3e-3);
}

TEST(RmsNormTest, GradientsMatchFiniteDifferences) {
  torch::manual_seed(1);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
  const torch::Tensor x = torch::randn({3, 6}, opts);
  const torch::Tensor delta = torch::randn({3, 6}, opts);
  const torch::Tensor w = torch::randn({6}, opts);
  EXPECT_LT(testing::MaxGradCheckError(
                [](const std::vector<torch::Tensor>& in) { return RmsNorm(in[0], in[1]); },
                {x, w}),
            1e-6);
  EXPECT_LT(testing::MaxGradCheckError(
                [](const std::vector<torch::Tensor>& in) {
                  const AddRmsNormResult r = AddRmsNorm(in[0], in[1], in[2]);
                  // Both outputs feed the scalar, so both backward paths are checked.
                  return torch::cat({r.sum, r.normed});
                },
                {x, delta, w}),
            1e-6);
}

TEST(RmsNormTest, RejectsMismatchedWeight) {
  EXPECT_THROW(RmsNorm(torch::randn({2, 8}), torch::ones({7})), c10::Error);
  EXPECT_THROW(AddRmsNorm(torch::randn({2, 8}), torch::randn({2, 9}), torch::ones({8})),
               c10::Error);
}

// CUDA kernel vs the ATen composite on the same GPU: forward and every gradient.
TEST(RmsNormTest, CudaKernelMatchesComposite) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
  const torch::Device gpu(torch::kCUDA);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {1, 32}, {37, 40}, {129, 256}, {5, 130}, {3, 37}, {1000, 768}, {64, 1000},
      {33, 2048}, {17, 4096}, {16384, 256}, {16384, 768}};
  // {stream, delta, out}: one dtype throughout, and a float32 stream under bf16 autocast (a bf16
  // branch joining it, a bf16 output for the next GEMM).
  struct Combo {
    torch::ScalarType stream, delta, out;
  };
  const std::vector<Combo> combos = {{torch::kBFloat16, torch::kBFloat16, torch::kBFloat16},
                                     {torch::kFloat32, torch::kFloat32, torch::kFloat32},
                                     {torch::kFloat32, torch::kBFloat16, torch::kBFloat16},
                                     {torch::kFloat32, torch::kBFloat16, torch::kFloat32},
                                     {torch::kFloat32, torch::kFloat32, torch::kBFloat16}};
  const auto short_name = [](torch::ScalarType t) { return t == torch::kBFloat16 ? "bf16" : "fp32"; };
  bool all_ok = true;
  for (const Combo& combo : combos) {
    const bool any_bf16 = combo.stream == torch::kBFloat16 || combo.delta == torch::kBFloat16 ||
                          combo.out == torch::kBFloat16;
    const double tol = any_bf16 ? 1e-2 : 1e-4;
    for (const auto& [rows, d] : shapes) {
      torch::manual_seed(rows * 7919 + d);
      const auto opts = torch::TensorOptions().device(gpu);
      const torch::Tensor x0 = torch::randn({rows, d}, opts.dtype(combo.stream));
      const torch::Tensor delta0 = torch::randn({rows, d}, opts.dtype(combo.delta));
      // The model's parameter is fp32; the op casts it (and autograd casts its grad back).
      const torch::Tensor w0 = 1 + 0.1 * torch::randn({d}, torch::TensorOptions().device(gpu));
      const torch::Tensor g_sum = torch::randn({rows, d}, opts.dtype(combo.stream));
      const torch::Tensor g_norm = torch::randn({rows, d}, opts.dtype(combo.out));

      auto run = [&](bool kernel) {
        torch::Tensor x = x0.clone().requires_grad_(true);
        torch::Tensor delta = delta0.clone().requires_grad_(true);
        torch::Tensor w = w0.clone().requires_grad_(true);
        const int64_t bytes = rows * d * x0.element_size();
        const int64_t out_bytes = rows * d * g_norm.element_size();
        if (kernel) testing::PoisonAllocator(gpu, {bytes, out_bytes, bytes, rows * 4});
        const AddRmsNormResult r = kernel ? AddRmsNorm(x, delta, w, combo.out)
                                          : AddRmsNormReference(x, delta, w, combo.out);
        const torch::Tensor plain =
            kernel ? RmsNorm(x, w, combo.out) : RmsNormReference(x, w, combo.out);
        EXPECT_EQ(r.sum.scalar_type(), combo.stream);
        EXPECT_EQ(r.normed.scalar_type(), combo.out);
        EXPECT_EQ(plain.scalar_type(), combo.out);
        const std::vector<torch::Tensor> g = torch::autograd::grad(
            {r.sum, r.normed, plain}, {x, delta, w}, {g_sum, g_norm, g_norm});
        EXPECT_EQ(g[1].scalar_type(), combo.delta);
        return std::vector<torch::Tensor>{r.sum, r.normed, plain, g[0], g[1], g[2]};
      };
      const std::vector<torch::Tensor> got = run(true);
      const std::vector<torch::Tensor> want = run(false);
      const std::string name = std::string(short_name(combo.stream)) + "+" +
                               short_name(combo.delta) + "->" + short_name(combo.out) + " " +
                               std::to_string(rows) + "x" + std::to_string(d);
      all_ok &= Report("add_rms_norm", name,
                       {{"sum", RelErr(got[0], want[0])},
                        {"normed", RelErr(got[1], want[1])},
                        {"plain", RelErr(got[2], want[2])},
                        {"dx", RelErr(got[3], want[3])},
                        {"ddelta", RelErr(got[4], want[4])},
                        {"dw", RelErr(got[5], want[5])}},
                       tol);
      // The weight gradient's two-pass reduction is deterministic: a rerun is bit-identical.
      const std::vector<torch::Tensor> again = run(true);
      EXPECT_TRUE(torch::equal(again[5], got[5])) << name << ": dw not deterministic";
    }
  }
  EXPECT_TRUE(all_ok) << "see the FAIL lines above";
}

}  // namespace
}  // namespace gauntlet::kernels
