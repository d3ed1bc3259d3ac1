#include "trainer/kernels/linear_cross_entropy.h"

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

// Independent of the op: log-softmax written out in fp64.
torch::Tensor Formula(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& t,
                      const torch::Tensor& rw) {
  const torch::Tensor logits = h.to(torch::kFloat64).mm(w.to(torch::kFloat64).t());
  const torch::Tensor lse = logits.logsumexp(-1);
  const torch::Tensor picked = logits.gather(1, t.unsqueeze(1)).squeeze(1);
  return ((lse - picked) * rw.to(torch::kFloat64)).sum();
}

TEST(LinearCrossEntropyTest, FallbackMatchesFormula) {
  torch::manual_seed(0);
  const torch::Tensor h = torch::randn({11, 16});
  const torch::Tensor w = torch::randn({65, 16});
  const torch::Tensor t = torch::randint(0, 65, {11}, torch::kInt64);
  const torch::Tensor rw = (torch::rand({11}) > 0.5).to(torch::kFloat32) * 0.25;
  const torch::Tensor loss = LinearCrossEntropy(h, w, t, rw);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat32);
  EXPECT_LT(RelErr(loss, Formula(h, w, t, rw)), 1e-6);
}

TEST(LinearCrossEntropyTest, GradientsMatchFiniteDifferences) {
  torch::manual_seed(1);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).requires_grad(true);
  const torch::Tensor h = torch::randn({4, 3}, opts);
  const torch::Tensor w = torch::randn({5, 3}, opts);
  const torch::Tensor t = torch::tensor({0, 4, 2, 2}, torch::kInt64);
  const torch::Tensor rw = torch::tensor({1.0f, 0.0f, 0.5f, 2.0f});
  // The fp32 row weights and fp32 loss limit the check's precision, not the math.
  EXPECT_LT(testing::MaxGradCheckError(
                [&](const std::vector<torch::Tensor>& in) {
                  return LinearCrossEntropy(in[0], in[1], t, rw).to(torch::kFloat64);
                },
                {h, w}, 1e-3),
            1e-4);
}

TEST(LinearCrossEntropyTest, RejectsBadArguments) {
  const torch::Tensor h = torch::randn({4, 8});
  const torch::Tensor w = torch::randn({10, 8});
  const torch::Tensor t = torch::zeros({4}, torch::kInt64);
  const torch::Tensor rw = torch::ones({4});
  EXPECT_THROW(LinearCrossEntropy(h, torch::randn({10, 7}), t, rw), c10::Error);
  EXPECT_THROW(LinearCrossEntropy(h, w, t.to(torch::kInt32), rw), c10::Error);
  EXPECT_THROW(LinearCrossEntropy(h, w, t, torch::ones({3})), c10::Error);
  LinearCrossEntropyOptions bad;
  bad.chunk_rows = -1;
  EXPECT_THROW(LinearCrossEntropy(h, w, t, rw, bad), c10::Error);
}

struct GpuCase {
  int64_t rows, d, vocab, chunk_rows;
};

TEST(LinearCrossEntropyTest, CudaKernelMatchesComposite) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
  const torch::Device gpu(torch::kCUDA);
  const std::vector<GpuCase> cases = {
      {1, 16, 65, 0},      {37, 64, 65, 0},      {300, 128, 1000, 100}, {257, 96, 1025, 0},
      {64, 64, 8192, 0},   {129, 128, 50304, 50}, {4096, 256, 65, 1000}, {2048, 768, 50304, 0},
  };
  bool all_ok = true;
  for (auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    const double tol = dtype == torch::kBFloat16 ? 1e-2 : 1e-4;
    for (const GpuCase& c : cases) {
      torch::manual_seed(c.rows * 13 + c.vocab);
      const torch::Tensor h0 = torch::randn({c.rows, c.d}, torch::TensorOptions().device(gpu))
                                   .to(dtype);
      // fp32 master weight, as the model holds it; scaled so logits have a realistic spread.
      const torch::Tensor w0 =
          torch::randn({c.vocab, c.d}, torch::TensorOptions().device(gpu)) / std::sqrt(c.d);
      const torch::Tensor t = torch::randint(0, c.vocab, {c.rows},
                                             torch::TensorOptions().device(gpu).dtype(torch::kInt64));
      // The worker arch's case: about a quarter of the rows trained, with a mean's scale.
      const torch::Tensor rw =
          (torch::rand({c.rows}, torch::TensorOptions().device(gpu)) < 0.25).to(torch::kFloat32) *
          (4.0f / c.rows);
      rw[0] = 1.0f / c.rows;  // at least one trained row
      const torch::Tensor go = torch::full({}, 1.5f, torch::TensorOptions().device(gpu));
      LinearCrossEntropyOptions options;
      options.chunk_rows = c.chunk_rows;
      auto run = [&](bool kernel) {
        torch::Tensor h = h0.clone().requires_grad_(true);
        torch::Tensor w = w0.clone().requires_grad_(true);
        if (kernel) {
          testing::PoisonAllocator(
              gpu, {c.rows * c.d * h0.element_size(), c.vocab * c.d * 4, c.rows * 4});
        }
        const torch::Tensor loss =
            kernel ? LinearCrossEntropy(h, w, t, rw, options)
                   : LinearCrossEntropyReference(h, w, t, rw);
        const std::vector<torch::Tensor> g = torch::autograd::grad({loss}, {h, w}, {go});
        return std::vector<torch::Tensor>{loss, g[0], g[1]};
      };
      const std::vector<torch::Tensor> got = run(true);
      const std::vector<torch::Tensor> want = run(false);
      const std::string name = std::string(dtype == torch::kBFloat16 ? "bf16" : "fp32") +
                               " N=" + std::to_string(c.rows) + " d=" + std::to_string(c.d) +
                               " V=" + std::to_string(c.vocab) +
                               " chunk=" + std::to_string(c.chunk_rows);
      all_ok &= Report("linear_cross_entropy", name,
                       {{"loss", RelErr(got[0], want[0])},
                        {"dh", RelErr(got[1], want[1])},
                        {"dW", RelErr(got[2], want[2])}},
                       tol);
    }
  }
  // Loss only (no gradient wanted): the kernel skips the in-place gradient.
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor h = torch::randn({100, 64}, torch::TensorOptions().device(gpu));
    const torch::Tensor w = torch::randn({1000, 64}, torch::TensorOptions().device(gpu)) / 8;
    const torch::Tensor t =
        torch::randint(0, 1000, {100}, torch::TensorOptions().device(gpu).dtype(torch::kInt64));
    const torch::Tensor rw = torch::ones({100}, torch::TensorOptions().device(gpu));
    all_ok &= Report("linear_cross_entropy", "fp32 no-grad N=100 V=1000",
                     {{"loss", RelErr(LinearCrossEntropy(h, w, t, rw),
                                      LinearCrossEntropyReference(h, w, t, rw))}},
                     1e-5);
  }
  EXPECT_TRUE(all_ok) << "see the FAIL lines above";
}

}  // namespace
}  // namespace gauntlet::kernels
