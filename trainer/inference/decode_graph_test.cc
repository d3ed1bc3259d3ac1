// A captured decode step replays exactly what eager decoding computes (GPU cases skip without
// CUDA; the CPU case checks the refusal).

#include "trainer/inference/decode_graph.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "trainer/kernels/test_util.h"
#include "trainer/models/registry.h"
#include "trainer/models/tiny_configs.h"

namespace gauntlet {
namespace {

using kernels::testing::HaveGpu;
using kernels::testing::NoGpuMessage;

std::shared_ptr<LanguageModelImpl> Build(const std::string& arch, const torch::Device& device,
                                         torch::ScalarType dtype) {
  torch::manual_seed(0);
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(TinyConfig(arch));
  EXPECT_TRUE(model.ok()) << model.status();
  (*model)->eval();
  (*model)->to(device);
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : (*model)->parameters()) p.set_data(p.data().to(dtype));
  return *model;
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

constexpr int64_t kBatch = 3;
constexpr int64_t kPrompt = 11;
constexpr int64_t kMaxLen = 40;

// Greedy generation from the same prompt, through the graph and eagerly (DecodeStep): the same
// tokens, and logits equal within `tolerance` at every step; then a second sequence through the
// same graph (re-prefilled buffers) again matches.
void ExpectGraphEqualsEager(const std::string& arch, torch::ScalarType dtype, double tolerance) {
  const torch::Device device(torch::kCUDA, 0);
  auto model = Build(arch, device, dtype);
  ASSERT_TRUE(model->SupportsStaticDecode()) << arch;
  const int64_t vocab = model->config().vocab_size;
  KvCache graph_cache = model->NewKvCache(kBatch, kMaxLen);
  torch::NoGradGuard no_grad;
  std::unique_ptr<DecodeGraph> graph;  // captured once, for both sequences
  for (int sequence = 0; sequence < 2; ++sequence) {
    torch::manual_seed(10 + sequence);
    const torch::Tensor prompt =
        torch::randint(vocab, {kBatch, kPrompt}, torch::TensorOptions(torch::kInt64).device(device));
    if (sequence == 0) {
      model->Prefill(graph_cache, prompt);
      absl::StatusOr<std::unique_ptr<DecodeGraph>> captured =
          DecodeGraph::Capture(*model, graph_cache);
      ASSERT_TRUE(captured.ok()) << arch << ": " << captured.status();
      graph = *std::move(captured);
    }
    KvCache eager_cache = model->NewKvCache(kBatch, kMaxLen);
    torch::Tensor eager_logits = model->Prefill(eager_cache, prompt);
    torch::Tensor graph_logits = graph->Prefill(prompt);
    EXPECT_LE(MaxAbsDiff(graph_logits, eager_logits), tolerance) << arch;
    torch::Tensor eager_token = eager_logits.argmax(-1);
    torch::Tensor graph_token = graph_logits.argmax(-1);
    for (int64_t t = kPrompt; t < kMaxLen; ++t) {
      ASSERT_TRUE(torch::equal(graph_token, eager_token)) << arch << " position " << t;
      eager_logits = model->DecodeStep(eager_cache, eager_token);
      graph_logits = graph->Step(graph_token).clone();
      EXPECT_LE(MaxAbsDiff(graph_logits, eager_logits), tolerance)
          << arch << " sequence " << sequence << " position " << t;
      eager_token = eager_logits.argmax(-1);
      graph_token = graph_logits.argmax(-1);
    }
    EXPECT_EQ(graph_cache.length, kMaxLen);
    EXPECT_EQ(graph_cache.position.item<int64_t>(), kMaxLen);
  }
}

TEST(DecodeGraphTest, ReplaysEqualEagerDecodingFloat32) {
  if (!HaveGpu()) GTEST_SKIP() << NoGpuMessage();
  for (const char* arch : {"standard", "hybrid", "sqa/sqa", "mixed", "looped", "matformer/joint",
                           "attn_drop"}) {
    ExpectGraphEqualsEager(arch, torch::kFloat32, 1e-4);
  }
}

TEST(DecodeGraphTest, ReplaysEqualEagerDecodingBfloat16) {
  if (!HaveGpu()) GTEST_SKIP() << NoGpuMessage();
  // The graph replays the static step (all slots under a mask), eager runs the host-shaped one:
  // bf16 rounding may differ by a few ulps (see kv_cache_test's bf16 tolerance).
  for (const char* arch : {"standard", "hybrid"}) {
    ExpectGraphEqualsEager(arch, torch::kBFloat16, 0.0625);
  }
}

TEST(DecodeGraphTest, RefusesWhatItCannotCapture) {
  const torch::Device cpu(torch::kCPU);
  auto standard = Build("standard", cpu, torch::kFloat32);
  KvCache cache = standard->NewKvCache(1, 16);
  const torch::Tensor prompt = torch::zeros({1, 4}, torch::kInt64);
  standard->Prefill(cache, prompt);
  EXPECT_EQ(DecodeGraph::Capture(*standard, cache).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DecodeGraph::Capture(*standard, cache, /*warmup=*/0).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto worker = Build("worker", cpu, torch::kFloat32);
  KvCache worker_cache = worker->NewKvCache(1, 16);
  worker->Prefill(worker_cache, prompt);
  absl::StatusOr<std::unique_ptr<DecodeGraph>> refused = DecodeGraph::Capture(*worker, worker_cache);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("static decode"), std::string::npos);
}

}  // namespace
}  // namespace gauntlet
