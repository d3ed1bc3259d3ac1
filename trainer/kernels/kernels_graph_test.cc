// Each op's forward + backward captured in a CUDA graph on a side stream, replayed on new
// inputs: the replays must equal eager runs on the same inputs. Skips without a GPU.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "trainer/kernels/causal_conv.h"
#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/gelu_ffn.h"
#include "trainer/kernels/linear_cross_entropy.h"
#include "trainer/kernels/rms_norm.h"
#include "trainer/kernels/rotary.h"
#include "trainer/kernels/test_util.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace gauntlet::kernels {
namespace {

using testing::HaveGpu;
using testing::RelErr;

// Outputs (forward results and gradients) of one step on `inputs`.
using Step = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

#if GAUNTLET_CUDA
// Captures `step` on static copies of `make_inputs(0)`, replays it on make_inputs(1) and
// make_inputs(2), and checks each replay against an eager run on the same inputs.
void CheckCapture(const std::string& op, const Step& step,
                  const std::function<std::vector<torch::Tensor>(int)>& make_inputs) {
  std::vector<torch::Tensor> statics = make_inputs(0);
  std::vector<torch::Tensor> outputs;
  at::cuda::CUDAGraph graph;
  {
    c10::cuda::CUDAStreamGuard side(at::cuda::getStreamFromPool());
    for (int i = 0; i < 3; ++i) step(statics);  // warm up: cuBLAS handles, allocator blocks
    graph.capture_begin();
    outputs = step(statics);
    graph.capture_end();
  }
  for (int replay = 1; replay <= 2; ++replay) {
    const std::vector<torch::Tensor> fresh = make_inputs(replay);
    for (size_t i = 0; i < statics.size(); ++i) {
      torch::NoGradGuard no_grad;
      statics[i].copy_(fresh[i]);
    }
    graph.replay();
    const std::vector<torch::Tensor> eager = step(fresh);
    ASSERT_EQ(eager.size(), outputs.size());
    bool ok = true;
    std::string line = "[kernel] graph " + op + " replay " + std::to_string(replay) + ":";
    for (size_t i = 0; i < eager.size(); ++i) {
      const double err = RelErr(outputs[i], eager[i]);
      line += " out" + std::to_string(i) + "=" + std::to_string(err);
      ok = ok && err <= 1e-6;
    }
    std::printf("%s %s\n", line.c_str(), ok ? "PASS" : "FAIL");
    EXPECT_TRUE(ok) << line;
  }
}
#endif

TEST(KernelsGraphTest, ForwardBackwardReplaysMatchEager) {
  if (!HaveGpu()) GTEST_SKIP() << testing::NoGpuMessage();
#if GAUNTLET_CUDA
  const auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  const auto fp32 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat32);
  const int64_t batch = 4, seq = 64, heads = 4, dh = 32, d = heads * dh, vocab = 65;

  CheckCapture(
      "add_rms_norm",
      [](const std::vector<torch::Tensor>& in) {
        const torch::Tensor x = in[0].detach().requires_grad_(true);
        const torch::Tensor delta = in[1].detach().requires_grad_(true);
        const AddRmsNormResult r = AddRmsNorm(x, delta, in[2]);
        const torch::Tensor y = RmsNorm(r.normed, in[2]);
        std::vector<torch::Tensor> out = torch::autograd::grad({r.sum, y}, {x, delta},
                                                               {in[3], in[3]});
        out.push_back(r.sum.detach());
        out.push_back(y.detach());
        return out;
      },
      [&](int seed) {
        torch::manual_seed(seed);
        return std::vector<torch::Tensor>{torch::randn({batch * seq, d}, bf16),
                                          torch::randn({batch * seq, d}, bf16),
                                          torch::randn({d}, fp32),
                                          torch::randn({batch * seq, d}, bf16)};
      });

  CheckCapture(
      "mixed_add_rms_norm_gate",
      [&](const std::vector<torch::Tensor>& in) {
        // The block's autocast path: float32 stream, bf16 branch, bf16 norm output, gate.
        const torch::Tensor x = in[0].detach().requires_grad_(true);
        const torch::Tensor delta = in[1].detach().requires_grad_(true);
        const torch::Tensor gate = in[2].detach().requires_grad_(true);
        const AddRmsNormResult r = AddRmsNorm(x, delta, in[3], torch::kBFloat16);
        const torch::Tensor gated = SigmoidGatedMerge(
            r.normed.view({batch, seq, heads, dh}).transpose(1, 2), gate);
        const torch::Tensor next = ResidualAdd(r.sum, gated);
        std::vector<torch::Tensor> out = torch::autograd::grad({next}, {x, delta, gate}, {in[4]});
        out.push_back(next.detach());
        return out;
      },
      [&](int seed) {
        torch::manual_seed(seed);
        return std::vector<torch::Tensor>{
            torch::randn({batch, seq, d}, fp32), torch::randn({batch, seq, d}, bf16),
            torch::randn({batch, seq, d}, bf16), torch::randn({d}, fp32),
            torch::randn({batch, seq, d}, fp32)};
      });

  CheckCapture(
      "causal_conv",
      [&](const std::vector<torch::Tensor>& in) {
        const torch::Tensor x = in[0].detach().requires_grad_(true);
        const torch::Tensor w = in[1].detach().requires_grad_(true);
        const torch::Tensor b = in[2].detach().requires_grad_(true);
        const torch::Tensor out = CausalConv(x, w, b);
        std::vector<torch::Tensor> grads = torch::autograd::grad({out}, {x, w, b}, {in[3]});
        grads.push_back(out.detach());
        return grads;
      },
      [&](int seed) {
        torch::manual_seed(seed);
        return std::vector<torch::Tensor>{torch::randn({batch, seq, d}, fp32),
                                          torch::randn({d, 1, 3}, fp32), torch::randn({d}, fp32),
                                          torch::randn({batch, seq, d}, fp32)};
      });

  CheckCapture(
      "gelu_ffn",
      [](const std::vector<torch::Tensor>& in) {
        const torch::Tensor x = in[0].detach().requires_grad_(true);
        std::vector<torch::Tensor> params;
        for (int i = 1; i <= 4; ++i) params.push_back(in[i].detach().requires_grad_(true));
        const torch::Tensor y = GeluFfn(x, params[0], params[1], params[2], params[3]);
        std::vector<torch::Tensor> out = torch::autograd::grad(
            {y}, {x, params[0], params[1], params[2], params[3]}, {in[5]});
        out.push_back(y.detach());
        return out;
      },
      [&](int seed) {
        torch::manual_seed(seed);
        return std::vector<torch::Tensor>{
            torch::randn({batch, seq, d}, bf16),  torch::randn({4 * d, d}, fp32) / 8,
            torch::randn({4 * d}, fp32),          torch::randn({d, 4 * d}, fp32) / 16,
            torch::randn({d}, fp32),              torch::randn({batch, seq, d}, bf16)};
      });

  const torch::Tensor angles =
      torch::outer(torch::arange(seq, fp32), torch::rand({dh / 2}, fp32));
  const torch::Tensor cos = torch::stack({angles.cos(), angles.cos()}, -1).flatten(-2).to(bf16);
  const torch::Tensor sin = torch::stack({-angles.sin(), angles.sin()}, -1).flatten(-2).to(bf16);
  CheckCapture(
      "rotary_qkv",
      [&](const std::vector<torch::Tensor>& in) {
        const torch::Tensor qkv = in[0].detach().requires_grad_(true);
        const QkvHeads r = RotaryQkv(qkv.view({batch, seq, 3, heads, dh}), cos, sin);
        std::vector<torch::Tensor> out =
            torch::autograd::grad({r.q, r.k, r.v}, {qkv}, {in[1], in[1], in[1]});
        out.push_back(r.q.detach());
        out.push_back(r.k.detach());
        out.push_back(r.v.detach());
        return out;
      },
      [&](int seed) {
        torch::manual_seed(seed);
        return std::vector<torch::Tensor>{torch::randn({batch, seq, 3 * d}, bf16),
                                          torch::randn({batch, heads, seq, dh}, bf16)};
      });

  CheckCapture(
      "linear_cross_entropy",
      [](const std::vector<torch::Tensor>& in) {
        const torch::Tensor h = in[0].detach().requires_grad_(true);
        const torch::Tensor w = in[1].detach().requires_grad_(true);
        LinearCrossEntropyOptions options;
        options.chunk_rows = 100;  // several chunks, the last one ragged
        const torch::Tensor loss = LinearCrossEntropy(h, w, in[2], in[3], options);
        std::vector<torch::Tensor> out = torch::autograd::grad({loss}, {h, w});
        out.push_back(loss.detach());
        return out;
      },
      [&](int seed) {
        torch::manual_seed(seed);
        torch::Tensor targets = torch::randint(0, vocab, {batch * seq}, fp32.dtype(torch::kInt64));
        return std::vector<torch::Tensor>{
            torch::randn({batch * seq, d}, bf16), torch::randn({vocab, d}, fp32) / 8, targets,
            (torch::rand({batch * seq}, fp32) < 0.5).to(torch::kFloat32) / (batch * seq)};
      });
#endif
}

}  // namespace
}  // namespace gauntlet::kernels
