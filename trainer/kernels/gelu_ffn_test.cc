#include "trainer/kernels/gelu_ffn.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <string>
#include <vector>

#include "trainer/kernels/test_util.h"

namespace gauntlet::kernels {
namespace {

using testing::HaveGpu;
using testing::RelErr;
using testing::Report;

TEST(GeluFfnTest, ReferenceIsTheFormulaWithExactGradients) {
  torch::manual_seed(0);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
  const torch::Tensor x = torch::randn({2, 3, 4}, opts);
  const torch::Tensor w1 = torch::randn({6, 4}, opts);
  const torch::Tensor b1 = torch::randn({6}, opts);
  const torch::Tensor w2 = torch::randn({4, 6}, opts);
  const torch::Tensor b2 = torch::randn({4}, opts);
  // Element (1, 2, 3) by hand: exact (erf) GELU between the two affine maps.
  double want = b2[3].item<double>();
  for (int j = 0; j < 6; ++j) {
    double h = b1[j].item<double>();
    for (int i = 0; i < 4; ++i) h += w1[j][i].item<double>() * x[1][2][i].item<double>();
    want += w2[3][j].item<double>() * 0.5 * h * (1 + std::erf(h / std::sqrt(2.0)));
  }
  EXPECT_NEAR(GeluFfn(x, w1, b1, w2, b2)[1][2][3].item<double>(), want, 1e-12);
  EXPECT_LT(testing::MaxGradCheckError(
                [](const std::vector<torch::Tensor>& in) {
                  return GeluFfn(in[0], in[1], in[2], in[3], in[4]);
                },
                {x, w1, b1, w2, b2}),
            1e-6);
  EXPECT_THROW(GeluFfn(torch::randn({2, 5}), torch::randn({6, 4}), torch::randn({6}),
                       torch::randn({4, 6}), torch::randn({4})),
               c10::Error);
}

// The fused op vs the ATen composite on the same GPU, in float32 and under bf16 autocast with
// float32 parameters (the training path): output and every gradient, odd widths included (the
// unvectorised column pass), and the backward bitwise repeatable.
TEST(GeluFfnTest, CudaMatchesCompositeAndIsDeterministic) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
  const torch::Device gpu(torch::kCUDA);
  struct Case {
    int64_t batch, seq, d, d_ff;
  };
  const std::vector<Case> cases = {
      {16, 1024, 256, 1024}, {2, 129, 768, 3072}, {3, 5, 36, 100}, {1, 7, 16, 40}};
  bool all_ok = true;
  for (bool autocast : {false, true}) {
    for (const Case& c : cases) {
      torch::manual_seed(c.d_ff + c.seq);
      const auto fp32 = torch::TensorOptions().device(gpu).dtype(torch::kFloat32);
      const torch::Tensor x0 = torch::randn({c.batch, c.seq, c.d}, fp32);
      const std::vector<torch::Tensor> p0 = {
          torch::randn({c.d_ff, c.d}, fp32) / std::sqrt(c.d), torch::randn({c.d_ff}, fp32) / 4,
          torch::randn({c.d, c.d_ff}, fp32) / std::sqrt(c.d_ff), torch::randn({c.d}, fp32) / 4};
      const torch::Tensor g0 = torch::randn({c.batch, c.seq, c.d}, fp32);
      auto run = [&](bool kernel) {
        std::vector<torch::Tensor> p;
        for (const torch::Tensor& t : p0) p.push_back(t.clone().requires_grad_(true));
        torch::Tensor x = (autocast ? x0.to(torch::kBFloat16) : x0).requires_grad_(true);
        torch::Tensor y;
        {
          at::autocast::set_autocast_enabled(torch::kCUDA, autocast);
          at::autocast::set_autocast_dtype(torch::kCUDA, torch::kBFloat16);
          y = kernel ? GeluFfn(x, p[0], p[1], p[2], p[3])
                     : GeluFfnReference(x, p[0], p[1], p[2], p[3]);
          at::autocast::set_autocast_enabled(torch::kCUDA, false);
          at::autocast::clear_cache();
        }
        std::vector<torch::Tensor> grads =
            torch::autograd::grad({y}, {x, p[0], p[1], p[2], p[3]}, {g0.to(y.scalar_type())});
        grads.insert(grads.begin(), y.detach());
        return grads;
      };
      const auto got = run(true);
      const auto want = run(false);
      const auto again = run(true);
      const std::vector<std::string> names = {"out", "dx", "dw1", "db1", "dw2", "db2"};
      std::vector<std::pair<std::string, double>> errors;
      bool repeatable = true;
      for (size_t i = 0; i < names.size(); ++i) {
        ASSERT_EQ(got[i].scalar_type(), want[i].scalar_type()) << names[i];
        errors.push_back({names[i], RelErr(got[i], want[i])});
        repeatable = repeatable && torch::equal(got[i], again[i]);
      }
      // bf16: the composite rounds the weight gradients to bf16 before casting them up; the
      // fused op accumulates them in fp32, so both sit within bf16 rounding of each other.
      const std::string name = std::string(autocast ? "autocast-bf16 " : "fp32 ") +
                               std::to_string(c.batch) + "x" + std::to_string(c.seq) + "x" +
                               std::to_string(c.d) + "->" + std::to_string(c.d_ff);
      all_ok &= Report("gelu_ffn", name, errors, autocast ? 1.5e-2 : 2e-5);
      EXPECT_TRUE(repeatable) << name << ": backward not bitwise repeatable";
    }
  }
  EXPECT_TRUE(all_ok);
}

}  // namespace
}  // namespace gauntlet::kernels
