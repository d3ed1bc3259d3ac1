#include "trainer/kernels/rotary.h"

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

// Full-width tables as trainer/models RotaryTable builds them: pair (2i, 2i+1) turns by
// t * 10000^(-2i/Dh); cos repeated per pair, sin with the even lane negated.
std::pair<torch::Tensor, torch::Tensor> Tables(int64_t seq, int64_t head_dim) {
  const torch::Tensor inv = torch::pow(
      10000.0, -torch::arange(0, head_dim / 2, torch::kFloat64) * 2.0 / head_dim);
  const torch::Tensor ang = torch::outer(torch::arange(0, seq, torch::kFloat64), inv);
  return {torch::stack({ang.cos(), ang.cos()}, -1).flatten(-2),
          torch::stack({-ang.sin(), ang.sin()}, -1).flatten(-2)};
}

// Independent of the op: the pairwise rotation on even/odd lanes, in fp64.
torch::Tensor Rotate(const torch::Tensor& x, int64_t seq, int64_t head_dim) {
  const torch::Tensor inv = torch::pow(
      10000.0, -torch::arange(0, head_dim / 2, torch::kFloat64) * 2.0 / head_dim);
  const torch::Tensor ang = torch::outer(torch::arange(0, seq, torch::kFloat64), inv);
  const torch::Tensor c = ang.cos().unsqueeze(1);  // (T, 1, Dh/2) against (B, T, H, Dh/2)
  const torch::Tensor s = ang.sin().unsqueeze(1);
  const torch::Tensor xd = x.to(torch::kFloat64);
  const torch::Tensor even = xd.slice(-1, 0, head_dim, 2);
  const torch::Tensor odd = xd.slice(-1, 1, head_dim, 2);
  return torch::stack({even * c - odd * s, odd * c + even * s}, -1).flatten(-2);
}

TEST(RotaryTest, FallbackMatchesPairwiseRotation) {
  torch::manual_seed(0);
  const int64_t batch = 2, seq = 5, heads = 3, dh = 8;
  const torch::Tensor qkv = torch::randn({batch, seq, 3, heads, dh});
  const auto [cos, sin] = Tables(seq, dh);
  const QkvHeads out = RotaryQkv(qkv, cos.to(torch::kFloat32), sin.to(torch::kFloat32));
  for (int s = 0; s < 3; ++s) {
    const torch::Tensor slot = qkv.select(2, s);
    const torch::Tensor want = (s < 2 ? Rotate(slot, seq, dh) : slot.to(torch::kFloat64))
                                   .transpose(1, 2);
    const torch::Tensor& got = s == 0 ? out.q : s == 1 ? out.k : out.v;
    EXPECT_TRUE(got.is_contiguous());
    EXPECT_LT(RelErr(got, want), 1e-6) << "slot " << s;
  }
  // Per-row (B, T, Dh) tables and the one-tensor variant agree with the shared tables.
  const torch::Tensor k = RotaryHeads(qkv.select(2, 1), cos.expand({batch, seq, dh}),
                                      sin.expand({batch, seq, dh}));
  EXPECT_LT(RelErr(k, out.k), 1e-6);
}

TEST(RotaryTest, GradientsMatchFiniteDifferences) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({2, 3, 3, 2, 4}, torch::kFloat64).requires_grad_(true);
  const auto [cos, sin] = Tables(3, 4);
  EXPECT_LT(testing::MaxGradCheckError(
                [&](const std::vector<torch::Tensor>& in) {
                  return torch::stack(RotaryTranspose(in[0], cos, sin, 2));
                },
                {x}),
            1e-6);
}

TEST(RotaryTest, RejectsBadShapes) {
  const auto [cos, sin] = Tables(4, 8);
  EXPECT_THROW(RotaryQkv(torch::randn({1, 4, 2, 2, 8}), cos, sin), c10::Error);
  EXPECT_THROW(RotaryHeads(torch::randn({1, 5, 2, 8}), cos, sin), c10::Error);
  EXPECT_THROW(RotaryTranspose(torch::randn({1, 4, 3, 2, 8}), cos, sin, 4), c10::Error);
}

struct GpuCase {
  std::string name;
  int64_t batch, seq, slots, heads, dh, rotated;
  bool per_row_tables;  // (B, T, Dh) tables instead of (T, Dh)
  bool strided_input;   // x is a slot subset of a wider (B, T, S + 1, H, Dh) tensor
  bool strided_tables;  // tables every other row of a longer table (the worker's gather)
};

TEST(RotaryTest, CudaKernelMatchesComposite) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
  const torch::Device gpu(torch::kCUDA);
  const std::vector<GpuCase> cases = {
      {"qkv tiny", 2, 5, 3, 2, 8, 2, false, false, false},
      {"qkv odd", 3, 17, 3, 3, 64, 2, false, false, false},
      {"qkv dh6 (pair path)", 2, 33, 3, 4, 6, 2, false, false, false},
      {"qkv per-row tables", 2, 19, 3, 2, 32, 2, true, false, false},
      {"worker kv (K rotated, V moved)", 2, 40, 2, 4, 64, 1, false, true, false},
      {"worker q (gathered tables)", 3, 16, 1, 4, 64, 1, false, false, true},
      {"seed qkv", 16, 1024, 3, 4, 64, 2, false, false, false},
      {"gpt2 qkv", 16, 1024, 3, 12, 64, 2, false, false, false},
  };
  bool all_ok = true;
  for (auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    const double tol = dtype == torch::kBFloat16 ? 1e-2 : 1e-5;
    for (const GpuCase& c : cases) {
      torch::manual_seed(c.seq * 31 + c.dh);
      const auto opts = torch::TensorOptions().device(gpu).dtype(dtype);
      torch::Tensor base = torch::randn({c.batch, c.seq, c.slots + (c.strided_input ? 1 : 0),
                                         c.heads, c.dh},
                                        opts);
      const torch::Tensor x0 = base.narrow(2, 0, c.slots);
      auto [cos, sin] = Tables(c.strided_tables ? 2 * c.seq : c.seq, c.dh);
      cos = cos.to(gpu, dtype);
      sin = sin.to(gpu, dtype);
      if (c.strided_tables) {
        cos = cos.slice(0, 1, 2 * c.seq, 2);
        sin = sin.slice(0, 1, 2 * c.seq, 2);
      }
      if (c.per_row_tables) {
        // Different positions per row: row b sees the tables shifted by b.
        std::vector<torch::Tensor> cs, ss;
        for (int64_t b = 0; b < c.batch; ++b) {
          cs.push_back(cos.roll(b, 0));
          ss.push_back(sin.roll(b, 0));
        }
        cos = torch::stack(cs);
        sin = torch::stack(ss);
      }
      std::vector<torch::Tensor> grads_out;
      for (int64_t s = 0; s < c.slots; ++s) {
        grads_out.push_back(torch::randn({c.batch, c.heads, c.seq, c.dh}, opts));
      }
      auto run = [&](bool kernel) {
        torch::Tensor x = x0.detach().requires_grad_(true);
        const int64_t bytes = c.batch * c.seq * c.heads * c.dh * x0.element_size();
        if (kernel) testing::PoisonAllocator(gpu, {bytes, bytes, bytes, bytes * c.slots});
        std::vector<torch::Tensor> out = kernel ? RotaryTranspose(x, cos, sin, c.rotated)
                                                : RotaryTransposeReference(x, cos, sin, c.rotated);
        const torch::Tensor gx = torch::autograd::grad(out, {x}, grads_out)[0];
        out.push_back(gx);
        return out;
      };
      const std::vector<torch::Tensor> got = run(true);
      const std::vector<torch::Tensor> want = run(false);
      std::vector<std::pair<std::string, double>> errors;
      for (int64_t s = 0; s < c.slots; ++s) {
        EXPECT_TRUE(got[s].is_contiguous());
        errors.push_back({"out" + std::to_string(s), RelErr(got[s], want[s])});
      }
      errors.push_back({"dx", RelErr(got.back(), want.back())});
      all_ok &= Report("rotary", std::string(dtype == torch::kBFloat16 ? "bf16 " : "fp32 ") +
                                     c.name,
                       errors, tol);
    }
  }
  EXPECT_TRUE(all_ok) << "see the FAIL lines above";
}

}  // namespace
}  // namespace gauntlet::kernels
