// Times each CUDA kernel against its ATen composite with CUDA events (median of many reps after
// warm-up) at the shapes the models train at, and prints a markdown table.
//   usage: kernels_bench [--reps N]
// Needs a CUDA build (--config=cuda) and a GPU.

#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "trainer/kernels/linear_cross_entropy.h"
#include "trainer/kernels/causal_conv.h"
#include "trainer/kernels/elementwise.h"
#include "trainer/kernels/gelu_ffn.h"
#include "trainer/kernels/rms_norm.h"
#include "trainer/kernels/rotary.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace gauntlet::kernels {
namespace {

#if GAUNTLET_CUDA
struct Shape {
  std::string name;
  int64_t batch, seq, d, heads, vocab;
};

// Median milliseconds of fn over `reps` runs, after warm-up.
double MedianMs(const std::function<void()>& fn, int reps) {
  for (int i = 0; i < 5; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    fn();
    stop.record();
    stop.synchronize();
    ms.push_back(start.elapsed_time(stop));
  }
  std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
  return ms[ms.size() / 2];
}

void Row(const std::string& op, const std::string& shape, double bytes, double kernel_ms,
         double aten_ms) {
  std::printf("| %s | %s | %.3f | %.3f | %.2fx | %.0f | %.0f |\n", op.c_str(), shape.c_str(),
              kernel_ms, aten_ms, aten_ms / kernel_ms, bytes / kernel_ms / 1e6,
              bytes / aten_ms / 1e6);
  std::fflush(stdout);
}

void Bench(const Shape& s, int reps) {
  const auto bf16 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  const auto fp32 = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat32);
  const int64_t rows = s.batch * s.seq, d = s.d, dh = d / s.heads;
  const std::string shape = s.name + " (B=" + std::to_string(s.batch) + ", T=" +
                            std::to_string(s.seq) + ", d=" + std::to_string(d) + ")";

  // Residual add + RMSNorm: forward+backward. Minimal traffic: fwd reads x, delta, writes sum,
  // y (4 rows); bwd reads dy, dsum, sum, writes dx (4 rows) — 8 * rows * d * 2 bytes.
  {
    const torch::Tensor x = torch::randn({rows, d}, bf16).requires_grad_(true);
    const torch::Tensor delta = torch::randn({rows, d}, bf16).requires_grad_(true);
    const torch::Tensor w = torch::ones({d}, fp32).requires_grad_(true);
    const torch::Tensor g = torch::randn({rows, d}, bf16);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const AddRmsNormResult r =
            kernel ? AddRmsNorm(x, delta, w) : AddRmsNormReference(x, delta, w);
        torch::autograd::grad({r.sum, r.normed}, {x, delta, w}, {g, g});
      };
    };
    Row("add + rms_norm fwd+bwd", shape, 8.0 * rows * d * 2, MedianMs(run(true), reps),
        MedianMs(run(false), reps));
    auto fwd = [&](bool kernel) {
      return [&, kernel] {
        torch::NoGradGuard no_grad;
        kernel ? AddRmsNorm(x, delta, w) : AddRmsNormReference(x, delta, w);
      };
    };
    Row("add + rms_norm fwd", shape, 4.0 * rows * d * 2, MedianMs(fwd(true), reps),
        MedianMs(fwd(false), reps));
  }
  // The autocast block's form: float32 stream + bf16 branch -> float32 sum and bf16 normed;
  // backward takes bf16 dy and gives float32 dx and bf16 ddelta. The composite is what the model
  // ran before: cast the branch up, add, norm in float32, cast the output down.
  {
    const torch::Tensor x = torch::randn({rows, d}, fp32).requires_grad_(true);
    const torch::Tensor delta = torch::randn({rows, d}, bf16).requires_grad_(true);
    const torch::Tensor w = torch::ones({d}, fp32).requires_grad_(true);
    const torch::Tensor g_sum = torch::randn({rows, d}, fp32);
    const torch::Tensor g = torch::randn({rows, d}, bf16);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const AddRmsNormResult r =
            kernel ? AddRmsNorm(x, delta, w, torch::kBFloat16)
                   : AddRmsNormReference(x, delta.to(torch::kFloat32), w, torch::kBFloat16);
        torch::autograd::grad({r.sum, r.normed}, {x, delta, w}, {g_sum, g});
      };
    };
    // fwd: x 4 + delta 2 + sum 4 + y 2; bwd: dy 2 + dsum 4 + sum 4 + dx 4 + ddelta 2 bytes.
    Row("fp32 stream + bf16 branch: add + rms_norm -> bf16, fwd+bwd", shape, 28.0 * rows * d,
        MedianMs(run(true), reps), MedianMs(run(false), reps));
  }
  // Residual add of a bf16 branch into the float32 stream, fwd+bwd (x 4 + delta 2 + out 4;
  // backward casts the gradient for the branch: 4 + 2 bytes).
  {
    const torch::Tensor x = torch::randn({rows, d}, fp32).requires_grad_(true);
    const torch::Tensor delta = torch::randn({rows, d}, bf16).requires_grad_(true);
    const torch::Tensor g = torch::randn({rows, d}, fp32);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const torch::Tensor out = kernel ? ResidualAdd(x, delta) : ResidualAddReference(x, delta);
        torch::autograd::grad({out}, {x, delta}, {g});
      };
    };
    Row("residual add fp32 + bf16 fwd+bwd", shape, 16.0 * rows * d, MedianMs(run(true), reps),
        MedianMs(run(false), reps));
  }
  // The feed-forward block fwd+bwd under bf16 autocast (GEMMs included, so the ratio is of the
  // whole block): bytes are the activations' minimum traffic, (d, 4d) bf16 per row, both ways.
  {
    const int64_t d_ff = 4 * d;
    const torch::Tensor x = torch::randn({rows, d}, bf16).requires_grad_(true);
    std::vector<torch::Tensor> p = {torch::randn({d_ff, d}, fp32) / 16,
                                    torch::randn({d_ff}, fp32),
                                    torch::randn({d, d_ff}, fp32) / 32, torch::randn({d}, fp32)};
    for (torch::Tensor& t : p) t.requires_grad_(true);
    const torch::Tensor g = torch::randn({rows, d}, bf16);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        at::autocast::set_autocast_enabled(torch::kCUDA, true);
        at::autocast::set_autocast_dtype(torch::kCUDA, torch::kBFloat16);
        const torch::Tensor out = kernel ? GeluFfn(x, p[0], p[1], p[2], p[3])
                                         : GeluFfnReference(x, p[0], p[1], p[2], p[3]);
        at::autocast::set_autocast_enabled(torch::kCUDA, false);
        at::autocast::clear_cache();
        torch::autograd::grad({out}, {x, p[0], p[1], p[2], p[3]}, {g});
      };
    };
    Row("gelu ffn (d_ff = 4d) bf16 autocast fwd+bwd", shape, 2.0 * rows * (d + d_ff) * 2 * 3,
        MedianMs(run(true), reps), MedianMs(run(false), reps));
  }
  // Sigmoid output gate + head merge, SDPA's (B, T, H, Dh) storage: fwd reads context and gate,
  // writes out; bwd reads dout, context, gate, writes dcontext, dgate: 8 * rows * d * 2 bytes.
  {
    const torch::Tensor ctx = torch::randn({s.batch, s.seq, s.heads, dh}, bf16)
                                  .transpose(1, 2)
                                  .detach()
                                  .requires_grad_(true);
    const torch::Tensor gate = torch::randn({s.batch, s.seq, d}, bf16).requires_grad_(true);
    const torch::Tensor g = torch::randn({s.batch, s.seq, d}, bf16);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const torch::Tensor out =
            kernel ? SigmoidGatedMerge(ctx, gate) : SigmoidGatedMergeReference(ctx, gate);
        torch::autograd::grad({out}, {ctx, gate}, {g});
      };
    };
    Row("sigmoid gate + head merge fwd+bwd", shape, 8.0 * rows * d * 2, MedianMs(run(true), reps),
        MedianMs(run(false), reps));
  }
  // The worker's causal depthwise conv (K = 3) on the float32 stream, fwd+bwd: fwd reads x,
  // writes out; bwd reads g and x, writes dx: 5 * rows * d * 4 bytes.
  {
    const torch::Tensor x = torch::randn({s.batch, s.seq, d}, fp32).requires_grad_(true);
    const torch::Tensor w = torch::randn({d, 1, 3}, fp32).requires_grad_(true);
    const torch::Tensor b = torch::randn({d}, fp32).requires_grad_(true);
    const torch::Tensor g = torch::randn({s.batch, s.seq, d}, fp32);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const torch::Tensor out = kernel ? CausalConv(x, w, b) : CausalConvReference(x, w, b);
        torch::autograd::grad({out}, {x, w, b}, {g});
      };
    };
    Row("causal depthwise conv K=3 fp32 fwd+bwd", shape, 20.0 * rows * d,
        MedianMs(run(true), reps), MedianMs(run(false), reps));
  }
  // RoPE on Q, K + transpose of Q, K, V to (B, H, T, Dh): fwd+bwd, 4 * rows * 3d * 2 bytes.
  {
    const torch::Tensor qkv = torch::randn({s.batch, s.seq, 3 * d}, bf16).requires_grad_(true);
    const torch::Tensor angles =
        torch::outer(torch::arange(s.seq, fp32), torch::rand({dh / 2}, fp32));
    const torch::Tensor cos = torch::stack({angles.cos(), angles.cos()}, -1).flatten(-2).to(bf16);
    const torch::Tensor sin =
        torch::stack({-angles.sin(), angles.sin()}, -1).flatten(-2).to(bf16);
    const torch::Tensor g = torch::randn({s.batch, s.heads, s.seq, dh}, bf16);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const torch::Tensor v = qkv.view({s.batch, s.seq, 3, s.heads, dh});
        const std::vector<torch::Tensor> out =
            kernel ? RotaryTranspose(v, cos, sin, 2) : RotaryTransposeReference(v, cos, sin, 2);
        torch::autograd::grad(out, {qkv}, {g, g, g});
      };
    };
    Row("rope qkv + transpose fwd+bwd", shape, 4.0 * rows * 3 * d * 2, MedianMs(run(true), reps),
        MedianMs(run(false), reps));
  }
  // LM head + cross-entropy, all rows trained, fwd+bwd (GEMM-dominated at V=50,304). "GB/s"
  // counts one bf16 logits write + read, the traffic a fused loss cannot avoid.
  {
    const torch::Tensor h = torch::randn({rows, d}, bf16).requires_grad_(true);
    const torch::Tensor w = (torch::randn({s.vocab, d}, fp32) / 16).requires_grad_(true);
    const torch::Tensor t =
        torch::randint(0, s.vocab, {rows}, fp32.dtype(torch::kInt64));
    const torch::Tensor rw = torch::full({rows}, 1.0f / rows, fp32);
    auto run = [&](bool kernel) {
      return [&, kernel] {
        const torch::Tensor loss =
            kernel ? LinearCrossEntropy(h, w, t, rw) : LinearCrossEntropyReference(h, w, t, rw);
        torch::autograd::grad({loss}, {h, w});
      };
    };
    Row("lm head + cross-entropy fwd+bwd (V=" + std::to_string(s.vocab) + ")", shape,
        2.0 * rows * s.vocab * 2, MedianMs(run(true), reps), MedianMs(run(false), reps));
  }
}
#endif

}  // namespace
}  // namespace gauntlet::kernels

int main(int argc, char** argv) {
  int reps = 50;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(3, std::atoi(argv[i + 1]));
  }
#if GAUNTLET_CUDA
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "kernels_bench: no GPU visible\n");
    return 1;
  }
  std::printf("| op | shape | kernel ms | ATen ms | speedup | kernel GB/s | ATen GB/s |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
  gauntlet::kernels::Bench({"seed", 16, 1024, 256, 4, 65}, reps);
  gauntlet::kernels::Bench({"gpt2-small", 16, 1024, 768, 12, 50304}, reps);
  return 0;
#else
  (void)reps;
  std::fprintf(stderr, "kernels_bench: CPU-only build; build with --config=cuda\n");
  return 1;
#endif
}
