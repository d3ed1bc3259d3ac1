// Properties every architecture must have, checked through the registry at size `tiny`:
// causality, batch independence, parameter counts, gradients reaching every parameter, and the
// shape of what Forward returns. Numerical parity with an independent reference lives in
// tests/parity/.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/model_config.h"
#include "trainer/models/layer_stack.h"
#include "trainer/models/model.h"
#include "trainer/models/registry.h"
#include "trainer/models/tiny_configs.h"

namespace gauntlet {
namespace {

std::shared_ptr<LanguageModelImpl> Build(const ModelConfig& c, uint64_t seed = 0) {
  torch::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(c);
  EXPECT_TRUE(model.ok()) << model.status();
  (*model)->eval();
  return *model;
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a - b).abs().max().item<double>();
}

class ArchitectureTest : public ::testing::TestWithParam<std::string> {};

// A leak shows up as differences of order 0.1; 1e-5 leaves room for the sparse model's
// different padded shapes changing summation order.
constexpr double kSame = 1e-5;

TEST_P(ArchitectureTest, FutureTokensDoNotChangeEarlierOutputs) {
  const ModelConfig c = TinyConfig(GetParam());
  auto model = Build(c);
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len}, torch::kInt64);
  for (int64_t phase = 0; phase < model->NumEvalPhases(); ++phase) {
    const torch::Tensor base = model->Forward(tokens, phase).logits;
    for (int64_t p :
         {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{40}, c.seq_len - 2, c.seq_len - 1}) {
      torch::Tensor changed = tokens.clone();
      changed.select(1, p).add_(1).remainder_(c.vocab_size);
      const torch::Tensor logits = model->Forward(changed, phase).logits;
      EXPECT_LE(MaxAbsDiff(logits.narrow(1, 0, p), base.narrow(1, 0, p)), kSame)
          << "phase " << phase << ": changing position " << p << " changed an earlier output";
      // The change must be visible at p itself, or this test would pass on a constant model.
      EXPECT_GT(MaxAbsDiff(logits.select(1, p), base.select(1, p)), 1e-4)
          << "phase " << phase << " position " << p;
    }
  }
}

TEST_P(ArchitectureTest, RowsOfABatchAreIndependent) {
  const ModelConfig c = TinyConfig(GetParam());
  auto model = Build(c);
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {3, c.seq_len}, torch::kInt64);
  torch::Tensor changed = tokens.clone();
  changed[0] = torch::randint(c.vocab_size, {c.seq_len}, torch::kInt64);
  for (int64_t phase = 0; phase < model->NumEvalPhases(); ++phase) {
    const torch::Tensor a = model->Forward(tokens, phase).logits;
    const torch::Tensor b = model->Forward(changed, phase).logits;
    EXPECT_GT(MaxAbsDiff(a[0], b[0]), 1e-3);
    EXPECT_LE(MaxAbsDiff(a.narrow(0, 1, 2), b.narrow(0, 1, 2)), kSame) << "phase " << phase;
    // A row alone gives the same result as inside a batch.
    const torch::Tensor alone = model->Forward(tokens.narrow(0, 1, 1), phase).logits;
    EXPECT_LE(MaxAbsDiff(alone[0], a[1]), kSame) << "phase " << phase;
  }
}

TEST_P(ArchitectureTest, OutputShapesAndShorterWindows) {
  const ModelConfig c = TinyConfig(GetParam());
  auto model = Build(c);
  torch::NoGradGuard no_grad;
  for (int64_t len : {c.seq_len, int64_t{13}, int64_t{1}}) {
    const torch::Tensor tokens = torch::randint(c.vocab_size, {2, len}, torch::kInt64);
    const ModelOutput out = model->Forward(tokens, 0);
    EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({2, len, c.vocab_size}));
    EXPECT_EQ(out.train_positions.sizes(), torch::IntArrayRef({len}));
    EXPECT_EQ(out.train_positions.scalar_type(), torch::kBool);
    EXPECT_TRUE(torch::equal(out.train_positions, model->TrainPositions(len, 0)));
    EXPECT_EQ(out.aux_loss.dim(), 0);
    EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
  }
  const torch::Tensor too_long = torch::zeros({1, c.seq_len + 1}, torch::kInt64);
  EXPECT_THROW(model->Forward(too_long, 0), c10::Error);
}

TEST_P(ArchitectureTest, EveryParameterGetsAFiniteGradient) {
  const ModelConfig c = TinyConfig(GetParam());
  auto model = Build(c);
  model->train();
  torch::manual_seed(3);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len + 1}, torch::kInt64);
  const torch::Tensor inputs = tokens.narrow(1, 0, c.seq_len);
  const torch::Tensor targets = tokens.narrow(1, 1, c.seq_len);
  for (int64_t phase = 0; phase < model->NumEvalPhases(); ++phase) {
    model->zero_grad();
    const ModelOutput out = model->Forward(inputs, phase);
    (MaskedCrossEntropy(out.logits, targets, out.train_positions) + out.aux_loss).backward();
    for (const auto& item : model->named_parameters()) {
      const torch::Tensor& grad = item.value().grad();
      ASSERT_TRUE(grad.defined()) << item.key() << " has no gradient";
      EXPECT_TRUE(torch::isfinite(grad).all().item<bool>()) << item.key();
      EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key() << " phase " << phase;
    }
  }
}

// The training pass (hidden states at the trained positions, head fused into the loss) computes
// the same loss and the same gradients as logits everywhere + MaskedCrossEntropy.
TEST_P(ArchitectureTest, TrainingLossEqualsMaskedCrossEntropyOfTheLogits) {
  const ModelConfig c = TinyConfig(GetParam());
  auto model = Build(c);
  model->train();
  torch::manual_seed(5);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {3, c.seq_len + 1}, torch::kInt64);
  const torch::Tensor inputs = tokens.narrow(1, 0, c.seq_len);
  const torch::Tensor targets = tokens.narrow(1, 1, c.seq_len);
  auto grads = [&] {
    std::vector<torch::Tensor> g;
    for (const auto& p : model->parameters()) g.push_back(p.grad().clone());
    return g;
  };

  // What the training pass must equal: the LM loss of Forward's logits, or for MatFormer the
  // mean over the granularities it trains (joint: all; sample: the one drawn).
  std::vector<int64_t> trained_granularities;
  auto* stack = dynamic_cast<LayerStackTransformer*>(model.get());
  if (c.arch == "matformer") {
    const int64_t n = static_cast<int64_t>(c.matformer_granularities.size());
    if (c.matformer_train_mode == "joint") {
      for (int64_t g = 0; g < n; ++g) trained_granularities.push_back(g);
    } else {
      torch::manual_seed(11);  // the draw ForwardHidden makes below, after the same seed
      trained_granularities.push_back(torch::randint(n, {1}, torch::kInt64).item<int64_t>());
    }
  }
  model->zero_grad();
  torch::Tensor expected;
  torch::Tensor train_positions;
  if (trained_granularities.empty()) {
    const ModelOutput full = model->Forward(inputs);
    train_positions = full.train_positions;
    expected = MaskedCrossEntropy(full.logits, targets, full.train_positions);
  } else {
    expected = torch::zeros({});
    for (const int64_t g : trained_granularities) {
      stack->SetEvalGranularity({g});
      const ModelOutput full = model->Forward(inputs);
      train_positions = full.train_positions;
      expected = expected + MaskedCrossEntropy(full.logits, targets, full.train_positions) /
                                static_cast<double>(trained_granularities.size());
    }
    stack->SetEvalGranularity(c.matformer_eval_granularity);
  }
  expected.backward();
  const std::vector<torch::Tensor> expected_grads = grads();

  model->zero_grad();
  torch::manual_seed(11);
  const ModelOutput hidden = model->ForwardHidden(inputs);
  EXPECT_FALSE(hidden.logits.defined());
  const int64_t trained = train_positions.sum().item<int64_t>();
  const int64_t passes =
      c.matformer_train_mode == "joint" ? static_cast<int64_t>(trained_granularities.size()) : 1;
  EXPECT_EQ(hidden.hidden.size(1), trained * passes)
      << "the head must run exactly where training scores";
  const torch::Tensor loss = TrainingLoss(hidden, targets);
  loss.backward();
  const std::vector<torch::Tensor> actual_grads = grads();

  EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-5);
  for (size_t i = 0; i < expected_grads.size(); ++i) {
    EXPECT_LE(MaxAbsDiff(actual_grads[i], expected_grads[i]), 1e-6) << "parameter " << i;
  }
}

// Mixed precision as on GPUs (bf16 autocast, float32 residual stream and parameters), on the CPU:
// catches dtype mismatches between the layers and the fused ops before a GPU run does.
TEST_P(ArchitectureTest, TrainsUnderBf16Autocast) {
  const ModelConfig c = TinyConfig(GetParam());
  auto model = Build(c);
  model->train();
  torch::manual_seed(6);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len + 1}, torch::kInt64);
  at::autocast::set_autocast_enabled(torch::kCPU, true);
  at::autocast::set_autocast_dtype(torch::kCPU, at::kBFloat16);
  torch::Tensor loss;
  try {
    const ModelOutput out = model->ForwardHidden(tokens.narrow(1, 0, c.seq_len));
    loss = TrainingLoss(out, tokens.narrow(1, 1, c.seq_len)) + out.aux_loss;
  } catch (...) {
    at::autocast::set_autocast_enabled(torch::kCPU, false);
    throw;
  }
  at::autocast::set_autocast_enabled(torch::kCPU, false);
  at::autocast::clear_cache();
  ASSERT_EQ(loss.scalar_type(), torch::kFloat32);
  loss.backward();
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_TRUE(torch::isfinite(item.value().grad()).all().item<bool>()) << item.key();
  }
}

// Every arch, every SQA preset and both MatFormer training modes ("/" is not allowed in test
// names, hence the replacement).
INSTANTIATE_TEST_SUITE_P(AllArchs, ArchitectureTest,
                         ::testing::Values("standard", "worker", "sparse_depth", "hybrid",
                                           "sqa/sqa", "sqa/ssqa", "sqa/xsqa", "sqa/xsmqa", "mixed",
                                           "looped", "matformer/joint", "matformer/sample",
                                           "attn_drop", "mixed/worker", "mixed/worker_attn",
                                           "looped/worker", "matformer/worker_joint",
                                           "matformer/worker_sample"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '/', '_');
                           return name;
                         });

int64_t StandardParameterCount(const ModelConfig& c) {
  const int64_t d = c.d_model;
  const int64_t per_layer = 2 * d /*norms*/ + 5 * d * d /*qkv, gate, out*/ + 2 * d * c.d_ff +
                            c.d_ff + d /*FFN with biases*/;
  return c.vocab_size * d + c.n_layers * per_layer + d /*final norm*/ + d * c.vocab_size;
}

TEST(ParameterCountTest, MatchesTheFormulas) {
  const ModelConfig standard = TinyConfig("standard");
  EXPECT_EQ(Build(standard)->NumParameters(), StandardParameterCount(standard));

  // worker.h: the worker model has exactly L * (3d + d) + d more (conv kernel 3).
  ModelConfig worker = standard;
  worker.arch = "worker";
  const int64_t d = standard.d_model;
  EXPECT_EQ(Build(worker)->NumParameters() - Build(standard)->NumParameters(),
            standard.n_layers * (3 * d + d) + d);

  ModelConfig sparse = standard;
  sparse.arch = "sparse_depth";
  sparse.sparse_dense_layers = 1;  // one routed layer: one d -> 1 router with bias
  EXPECT_EQ(Build(sparse)->NumParameters(), StandardParameterCount(standard) + d + 1);

  ModelConfig hybrid = standard;
  hybrid.arch = "hybrid";
  hybrid.hybrid_attention_layers = {false, true};
  hybrid.hybrid_static_mlp_ratio = 3;
  const int64_t static_mlp = 2 * 3 * d * d + 3 * d + d;
  EXPECT_EQ(Build(hybrid)->NumParameters(),
            StandardParameterCount(standard) - 5 * d * d + static_mlp);
}

// Closed-form parameter count of a layer-stack model (docs/ARCHITECTURES.md).
int64_t LayerStackParameterCount(const ModelConfig& c) {
  const int64_t d = c.d_model;
  const int64_t head_width = d / c.n_heads;
  int64_t total = 2 * c.vocab_size * d + d;  // embedding, head, final norm
  for (const std::string& mixer : c.mixers) {
    total += d + 2 * d * c.d_ff + c.d_ff + d;  // norm2, FFN with biases
    if (mixer == "attn" || mixer == "sliced_attn") total += d + 5 * d * d;
    if (mixer == "sqa") {
      const int64_t q = c.sqa_q_heads * head_width;
      total += d + 3 * d * q + 2 * d * c.sqa_kv_heads * head_width;
    }
    if (mixer == "static_mlp") {
      const int64_t r = c.hybrid_static_mlp_ratio;
      total += d + 2 * r * d * d + r * d + d;
    }
    if (mixer == "worker") total += c.worker_conv_kernel * d + d + d + 5 * d * d;  // conv, norm1
  }
  if (std::count(c.mixers.begin(), c.mixers.end(), "worker") > 0) total += d;  // worker_type
  if (c.loop_embedding) total += c.loops * d;
  if (c.loop_inter_linear) total += (c.loops - 1) * d * d;
  return total;
}

TEST(ParameterCountTest, LayerStackArchsMatchTheFormula) {
  for (const std::string name : {"sqa/sqa", "sqa/ssqa", "sqa/xsqa", "sqa/xsmqa", "mixed", "looped",
                                 "matformer/joint", "attn_drop", "mixed/worker",
                                 "mixed/worker_attn", "looped/worker", "matformer/worker_joint"}) {
    const ModelConfig c = TinyConfig(name);
    EXPECT_EQ(Build(c)->NumParameters(), LayerStackParameterCount(c)) << name;
  }
  // With attention everywhere, one loop and the whole FFN, the layer stack is the standard model.
  ModelConfig mixed = TinyConfig("standard");
  mixed.arch = "mixed";
  mixed.mixers = {"attn", "attn"};
  EXPECT_EQ(Build(mixed)->NumParameters(), StandardParameterCount(TinyConfig("standard")));
}

TEST(LayerStackTest, AllWorkerLayersAreTheWorkerModel) {
  // The layer stack with worker mixers, one loop and the whole FFN holding the worker model's
  // weights (blocks.{i}.worker.* <- blocks.{i}.*) gives its logits at every phase, its training
  // loss and every gradient, and the same FLOPs, phases and trained positions.
  const ModelConfig stack_config = TinyConfig("mixed/worker");
  ModelConfig worker_config = stack_config;
  worker_config.arch = "worker";
  worker_config.mixers.clear();
  auto worker = Build(worker_config, 7);
  auto stack = Build(stack_config, 8);
  auto source = worker->named_parameters();
  auto target = stack->named_parameters();
  auto worker_name = [](std::string name) {
    const std::string marker = ".worker.";
    const size_t at = name.find(marker);
    return at == std::string::npos ? name : name.erase(at, marker.size() - 1);
  };
  ASSERT_EQ(source.size(), target.size());
  {
    torch::NoGradGuard no_grad;
    for (auto& item : target) {
      ASSERT_TRUE(source.contains(worker_name(item.key()))) << item.key();
      item.value().copy_(source[worker_name(item.key())]);
    }
  }
  EXPECT_EQ(stack->NumEvalPhases(), worker->NumEvalPhases());
  EXPECT_DOUBLE_EQ(stack->TrainingFlopsPerToken(64), worker->TrainingFlopsPerToken(64));
  const torch::Tensor tokens = torch::randint(65, {2, 65}, torch::kInt64);
  const torch::Tensor inputs = tokens.narrow(1, 0, 64);
  const torch::Tensor targets = tokens.narrow(1, 1, 64);
  {
    torch::NoGradGuard no_grad;
    for (int64_t phase = 0; phase < worker->NumEvalPhases(); ++phase) {
      EXPECT_TRUE(
          torch::equal(stack->TrainPositions(64, phase), worker->TrainPositions(64, phase)));
      EXPECT_LE(MaxAbsDiff(stack->Forward(inputs, phase).logits,
                           worker->Forward(inputs, phase).logits), 1e-6)
          << "phase " << phase;
    }
  }
  worker->train();
  stack->train();
  const torch::Tensor expected = TrainingLoss(worker->ForwardHidden(inputs), targets);
  const torch::Tensor actual = TrainingLoss(stack->ForwardHidden(inputs), targets);
  EXPECT_NEAR(actual.item<double>(), expected.item<double>(), 1e-6);
  expected.backward();
  actual.backward();
  for (const auto& item : target) {
    EXPECT_LE(MaxAbsDiff(item.value().grad(), source[worker_name(item.key())].grad()), 1e-6)
        << item.key();
  }
}

TEST(LayerStackTest, WorkerLayersTrainOnlyWorkersUnlessAttentionMixesEveryPosition) {
  EXPECT_EQ(Build(TinyConfig("mixed/worker"))->NumEvalPhases(), 4);
  EXPECT_EQ(Build(TinyConfig("looped/worker"))->NumEvalPhases(), 4);
  auto with_attention = Build(TinyConfig("mixed/worker_attn"));
  EXPECT_EQ(with_attention->NumEvalPhases(), 1);
  EXPECT_TRUE(with_attention->TrainPositions(64, 0).all().item<bool>());
  // No KV-cache decoding with worker layers; the others keep theirs.
  EXPECT_FALSE(with_attention->SupportsKvCache());
  EXPECT_TRUE(Build(TinyConfig("mixed"))->SupportsKvCache());
  // Attention drop leaves worker layers alone: they have no attention score.
  const std::vector<double> importance =
      with_attention->AttentionImportance(torch::randint(65, {1, 64}, torch::kInt64));
  ASSERT_EQ(importance.size(), 3u);
  EXPECT_TRUE(std::isnan(importance[0]));
  EXPECT_FALSE(std::isnan(importance[1]));
  EXPECT_THROW(with_attention->DropAttention({0}), c10::Error);
}

TEST(LayerStackTest, AllAttentionOneLoopIsTheStandardModel) {
  // Same parameter names and registration order, so the same seed gives the same weights and
  // the same function: the layer stack's trunk and MixerBlock("attn") add nothing.
  ModelConfig mixed = TinyConfig("standard");
  mixed.arch = "mixed";
  mixed.mixers = {"attn", "attn"};
  auto standard = Build(TinyConfig("standard"), 3);
  auto stack = Build(mixed, 3);
  ASSERT_EQ(standard->named_parameters().keys(), stack->named_parameters().keys());
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = torch::randint(65, {2, 64}, torch::kInt64);
  EXPECT_LE(MaxAbsDiff(standard->Forward(tokens).logits, stack->Forward(tokens).logits), 1e-6);
  EXPECT_DOUBLE_EQ(standard->TrainingFlopsPerToken(64), stack->TrainingFlopsPerToken(64));
}

TEST(LayerStackTest, SlicedAttentionSeesOnlyItsOwnChunk) {
  ModelConfig c = TinyConfig("mixed");
  c.n_layers = 2;
  c.mixers = {"sliced_attn", "sliced_attn"};
  c.slice_len = 16;
  auto model = Build(c);
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = torch::randint(c.vocab_size, {1, c.seq_len}, torch::kInt64);
  torch::Tensor changed = tokens.clone();
  changed.select(1, 3).add_(1).remainder_(c.vocab_size);
  const torch::Tensor a = model->Forward(tokens).logits;
  const torch::Tensor b = model->Forward(changed).logits;
  EXPECT_GT(MaxAbsDiff(a.narrow(1, 3, 13), b.narrow(1, 3, 13)), 1e-4);     // its chunk, t >= 3
  EXPECT_LE(MaxAbsDiff(a.narrow(1, 16, 48), b.narrow(1, 16, 48)), kSame);  // later chunks
}

TEST(LayerStackTest, AttentionDroppedEverywhereLeavesAPerTokenFunction) {
  ModelConfig c = TinyConfig("attn_drop");
  c.mixers = {"none", "none", "none"};
  auto model = Build(c);
  for (const auto& item : model->named_parameters()) {
    EXPECT_EQ(item.key().find("attn"), std::string::npos) << item.key();
    EXPECT_EQ(item.key().find("norm1"), std::string::npos) << item.key();
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor same = torch::full({1, 8}, 9, torch::kInt64);
  const torch::Tensor logits = model->Forward(same).logits;
  EXPECT_LE(MaxAbsDiff(logits.select(1, 0), logits.select(1, 7)), 1e-6);
}

TEST(LayerStackTest, MatFormerSubmodelsUseOnlyTheirPrefixOfHiddenUnits) {
  ModelConfig c = TinyConfig("matformer/joint");
  auto model = Build(c);
  auto* stack = dynamic_cast<LayerStackTransformer*>(model.get());
  ASSERT_NE(stack, nullptr);
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len}, torch::kInt64);
  stack->SetEvalGranularity({0});  // 32 of 128 hidden units
  EXPECT_EQ(stack->eval_widths(), std::vector<int64_t>({32, 32}));
  const torch::Tensor small = model->Forward(tokens).logits;
  stack->SetEvalGranularity({2});
  const torch::Tensor full = model->Forward(tokens).logits;
  EXPECT_GT(MaxAbsDiff(small, full), 1e-4);
  // Units 32.. of every FFN do not exist for the smallest submodel.
  for (auto& item : model->named_parameters()) {
    if (item.key().find("ffn.fc1.weight") != std::string::npos) {
      item.value().narrow(0, 32, 96).normal_();
    }
  }
  stack->SetEvalGranularity({0});
  EXPECT_LE(MaxAbsDiff(model->Forward(tokens).logits, small), 1e-6);
  stack->SetEvalGranularity({2});
  EXPECT_GT(MaxAbsDiff(model->Forward(tokens).logits, full), 1e-4);
  // Mix'n'Match: a width per layer.
  stack->SetEvalGranularity({0, 2});
  EXPECT_EQ(stack->eval_widths(), std::vector<int64_t>({32, 128}));
}

TEST(LayerStackTest, MatFormerSubmodelsAreEachGranularityAndTheMixNMatchChoice) {
  ModelConfig c = TinyConfig("matformer/joint");
  EXPECT_EQ(Build(c)->SubmodelNames(), std::vector<std::string>({"ffn=0.25", "ffn=0.5", "ffn=1"}));
  c.matformer_eval_granularity = {0, 2};
  auto model = Build(c);
  auto* stack = dynamic_cast<LayerStackTransformer*>(model.get());
  EXPECT_EQ(model->SubmodelNames(),
            std::vector<std::string>({"ffn=0.25", "ffn=0.5", "ffn=1", "ffn=0.25,1"}));
  model->SelectSubmodel("ffn=0.5");
  EXPECT_EQ(stack->eval_widths(), std::vector<int64_t>({64, 64}));
  model->SelectSubmodel("ffn=0.25,1");
  EXPECT_EQ(stack->eval_widths(), std::vector<int64_t>({32, 128}));
  model->SelectSubmodel("ffn=1");
  model->SelectSubmodel("");  // back to the configured choice
  EXPECT_EQ(stack->eval_widths(), std::vector<int64_t>({32, 128}));
  EXPECT_THROW(model->SelectSubmodel("ffn=0.3"), c10::Error);
  EXPECT_TRUE(Build(TinyConfig("standard"))->SubmodelNames().empty());
}

TEST(LayerStackTest, AttentionImportanceIsOneMinusTheCosineAcrossTheSubLayer) {
  ModelConfig c = TinyConfig("mixed");  // attn, sqa, sliced_attn, static_mlp, none
  auto model = Build(c);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len}, torch::kInt64);
  std::vector<double> importance = model->AttentionImportance(tokens);
  ASSERT_EQ(importance.size(), 5u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_GT(importance[i], 1e-4) << i;
    EXPECT_LE(importance[i], 2.0) << i;
  }
  EXPECT_TRUE(std::isnan(importance[3]));  // a static MLP is not attention
  EXPECT_TRUE(std::isnan(importance[4]));
  {
    // A zero output projection makes layer 1's attention a no-op: S = 0, the lowest.
    torch::NoGradGuard no_grad;
    model->named_parameters()["blocks.1.sqa.out.weight"].zero_();
  }
  importance = model->AttentionImportance(tokens);
  EXPECT_NEAR(importance[1], 0.0, 1e-6);
  EXPECT_GT(importance[0], importance[1]);
  EXPECT_GT(importance[2], importance[1]);
  EXPECT_FALSE(model->is_training());  // Build() left it in eval mode, and so does scoring
  EXPECT_TRUE(Build(TinyConfig("standard"))->AttentionImportance(tokens).empty());
}

TEST(LayerStackTest, DroppingAttentionIsTheModelBuiltWithoutIt) {
  // Post-hoc drop of layers 0 and 2 of the trained mixed model equals the model configured with
  // mixer "none" there, holding the same weights for every parameter it has.
  ModelConfig c = TinyConfig("mixed");  // attn, sqa, sliced_attn, static_mlp, none
  auto model = Build(c, 5);
  ModelConfig without = c;
  without.mixers = {"none", "sqa", "none", "static_mlp", "none"};
  auto reference = Build(without, 6);
  {
    torch::NoGradGuard no_grad;
    auto source = model->named_parameters();
    for (auto& item : reference->named_parameters()) item.value().copy_(source[item.key()]);
  }
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len + 1}, torch::kInt64);
  const torch::Tensor inputs = tokens.narrow(1, 0, c.seq_len);
  const torch::Tensor targets = tokens.narrow(1, 1, c.seq_len);
  EXPECT_THROW(model->DropAttention({3}), c10::Error);  // a static MLP is not attention
  EXPECT_THROW(model->DropAttention({5}), c10::Error);
  EXPECT_THROW(Build(TinyConfig("standard"))->DropAttention({0}), c10::Error);
  model->DropAttention({0, 2});
  {
    torch::NoGradGuard no_grad;
    EXPECT_LE(MaxAbsDiff(model->Forward(inputs).logits, reference->Forward(inputs).logits), 1e-6);
  }
  // Training the dropped model: the removed sub-layers' parameters get no gradient, the rest the
  // reference's.
  model->train();
  reference->train();
  TrainingLoss(model->ForwardHidden(inputs), targets).backward();
  TrainingLoss(reference->ForwardHidden(inputs), targets).backward();
  auto expected = reference->named_parameters();
  for (const auto& item : model->named_parameters()) {
    if (expected.contains(item.key())) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      EXPECT_LE(MaxAbsDiff(item.value().grad(), expected[item.key()].grad()), 1e-6) << item.key();
    } else {
      EXPECT_FALSE(item.value().grad().defined()) << item.key();
      EXPECT_TRUE(item.key().rfind("blocks.0.", 0) == 0 || item.key().rfind("blocks.2.", 0) == 0)
          << item.key();
    }
  }
  // The dropped layers score as having no attention.
  const std::vector<double> importance = model->AttentionImportance(inputs);
  EXPECT_TRUE(std::isnan(importance[0]));
  EXPECT_FALSE(std::isnan(importance[1]));
  EXPECT_TRUE(std::isnan(importance[2]));
}

TEST(LayerStackTest, MatFormerSampleModeTrainsEveryGranularity) {
  // Over many draws every granularity's smallest-unique hidden units get a gradient.
  ModelConfig c = TinyConfig("matformer/sample");
  auto model = Build(c);
  model->train();
  const torch::Tensor tokens = torch::randint(c.vocab_size, {1, c.seq_len + 1}, torch::kInt64);
  std::set<int64_t> widths_seen;
  for (int step = 0; step < 30; ++step) {
    model->zero_grad();
    TrainingLoss(model->ForwardHidden(tokens.narrow(1, 0, c.seq_len)),
                 tokens.narrow(1, 1, c.seq_len))
        .backward();
    for (const auto& item : model->named_parameters()) {
      if (item.key() != "blocks.0.ffn.fc1.weight") continue;
      // The trained width is the number of leading rows with a gradient.
      const torch::Tensor rows = item.value().grad().abs().sum(1) > 0;
      widths_seen.insert(rows.sum().item<int64_t>());
    }
  }
  EXPECT_EQ(widths_seen, std::set<int64_t>({32, 64, 128}));
}

TEST(LayerStackTest, MatFormerSampledStepEqualsTheNarrowedModelAtTheDrawnWidth) {
  // The sampled training pass runs the full-width FFN under a hidden-unit mask drawn on the
  // device; its loss and every gradient must be those of the model narrowed to the drawn width.
  ModelConfig c = TinyConfig("matformer/sample");
  auto model = Build(c, 4);
  auto reference = Build(c, 4);  // same seed: same weights
  auto* narrowed = dynamic_cast<LayerStackTransformer*>(reference.get());
  ASSERT_NE(narrowed, nullptr);
  model->train();
  const torch::Tensor tokens = torch::randint(c.vocab_size, {2, c.seq_len + 1}, torch::kInt64);
  const torch::Tensor inputs = tokens.narrow(1, 0, c.seq_len);
  const torch::Tensor targets = tokens.narrow(1, 1, c.seq_len);
  std::set<int64_t> drawn;
  for (int step = 0; step < 20; ++step) {
    model->zero_grad();
    const torch::Tensor loss = TrainingLoss(model->ForwardHidden(inputs), targets);
    loss.backward();
    int64_t match = -1;
    for (int64_t g = 0; g < 3 && match < 0; ++g) {
      narrowed->SetEvalGranularity({g});
      reference->zero_grad();
      const ModelOutput out = reference->Forward(inputs);
      const torch::Tensor expected = MaskedCrossEntropy(out.logits, targets, out.train_positions);
      if (std::abs(expected.item<double>() - loss.item<double>()) > 1e-6) continue;
      match = g;
      expected.backward();
      auto want = reference->named_parameters();
      for (const auto& item : model->named_parameters()) {
        ASSERT_TRUE(item.value().grad().defined()) << item.key();
        EXPECT_LE(MaxAbsDiff(item.value().grad(), want[item.key()].grad()), 1e-6)
            << item.key() << " at granularity " << g;
      }
    }
    ASSERT_GE(match, 0) << "step " << step << ": loss " << loss.item<double>()
                        << " is no granularity's";
    drawn.insert(match);
  }
  EXPECT_EQ(drawn, std::set<int64_t>({0, 1, 2}));
}

TEST(FlopsTest, LayerStackCountsItsMixersLoopsAndGranularities) {
  const double T = 64;
  // SQA: 6 x matmul weights + 12 x (query width) x T per layer.
  {
    const ModelConfig c = TinyConfig("sqa/xsmqa");
    auto model = Build(c);
    const int64_t d = c.d_model;
    const int64_t matmul = model->NumParameters() - c.vocab_size * d - (2 * c.n_layers + 1) * d -
                           c.n_layers * (c.d_ff + d);
    EXPECT_DOUBLE_EQ(model->TrainingFlopsPerToken(64),
                     6.0 * matmul + 12.0 * c.n_layers * (c.sqa_q_heads * d / c.n_heads) * T);
    ModelConfig full = c;
    full.arch = "mixed";
    full.mixers = {"attn", "attn"};
    EXPECT_LT(model->TrainingFlopsPerToken(64), Build(full)->TrainingFlopsPerToken(64));
  }
  // Looped: every loop counts again; the inter-loop linears once each.
  {
    const ModelConfig c = TinyConfig("looped");
    ModelConfig once = c;
    once.loops = 1;
    once.loop_inter_linear = false;
    const double head = 6.0 * c.d_model * c.vocab_size;
    EXPECT_DOUBLE_EQ(Build(c)->TrainingFlopsPerToken(64),
                     3 * (Build(once)->TrainingFlopsPerToken(64) - head) + head +
                         2 * 6.0 * c.d_model * c.d_model);
  }
  // MatFormer joint: one whole model per granularity; sample: their mean.
  {
    const ModelConfig joint = TinyConfig("matformer/joint");
    ModelConfig sample = TinyConfig("matformer/sample");
    double sum = 0;
    for (const int64_t width : {32, 64, 128}) {
      ModelConfig one = TinyConfig("standard");
      one.d_ff = width;
      sum += Build(one)->TrainingFlopsPerToken(64);
    }
    EXPECT_DOUBLE_EQ(Build(joint)->TrainingFlopsPerToken(64), sum);
    EXPECT_DOUBLE_EQ(Build(sample)->TrainingFlopsPerToken(64), sum / 3);
  }
  // Sliced attention scores slice_len keys; a dropped mixer costs nothing.
  {
    ModelConfig sliced = TinyConfig("mixed");
    sliced.n_layers = 1;
    sliced.mixers = {"sliced_attn"};
    ModelConfig none = sliced;
    none.mixers = {"none"};
    const double d = sliced.d_model;
    EXPECT_DOUBLE_EQ(
        Build(sliced)->TrainingFlopsPerToken(64) - Build(none)->TrainingFlopsPerToken(64),
        6.0 * 5 * d * d + 12.0 * d * sliced.slice_len);
  }
}

TEST(FlopsTest, StandardIsSixNPlusAttention) {
  ModelConfig c = TinyConfig("standard");
  auto model = Build(c);
  const int64_t d = c.d_model;
  // Matmul weights only: no embedding lookup, norms or biases.
  const int64_t matmul_params = model->NumParameters() - c.vocab_size * d -
                                (2 * c.n_layers + 1) * d - c.n_layers * (c.d_ff + d);
  EXPECT_DOUBLE_EQ(model->TrainingFlopsPerToken(c.seq_len),
                   6.0 * matmul_params + 12.0 * c.n_layers * d * c.seq_len);
}

TEST(FlopsTest, EfficientVariantsCountLessWork) {
  for (const std::string arch : {"worker", "sparse_depth", "hybrid"}) {
    ModelConfig c = TinyConfig(arch);
    c.n_layers = 2;
    c.hybrid_attention_layers = {true, false};
    ModelConfig s = c;
    s.arch = "standard";
    EXPECT_LT(Build(c)->TrainingFlopsPerToken(64), Build(s)->TrainingFlopsPerToken(64)) << arch;
  }
}

TEST(WorkerTest, PhasesCoverEveryPositionOnce) {
  ModelConfig c = TinyConfig("worker");
  c.worker_interval = 3;
  auto model = Build(c);
  ASSERT_EQ(model->NumEvalPhases(), 3);
  torch::Tensor hits = torch::zeros({c.seq_len}, torch::kInt64);
  for (int64_t phase = 0; phase < 3; ++phase) {
    const torch::Tensor mask = model->TrainPositions(c.seq_len, phase);
    EXPECT_TRUE(mask[c.seq_len - 1].item<bool>());
    hits += mask.to(torch::kInt64);
  }
  hits[c.seq_len - 1] -= 2;  // the last position is a worker in every phase
  EXPECT_TRUE(torch::equal(hits, torch::ones({c.seq_len}, torch::kInt64)));
  EXPECT_THROW(model->TrainPositions(c.seq_len, 3), c10::Error);
}

TEST(WorkerTest, NonWorkerStreamsStayEqualToTheirEmbedding) {
  // worker.h: only workers update their residual stream, so a non-worker's logits
  // are a function of its own token alone (same token, same logits, wherever it stands).
  ModelConfig c = TinyConfig("worker");
  auto model = Build(c);
  torch::NoGradGuard no_grad;
  const torch::Tensor tokens = torch::full({1, 16}, 7, torch::kInt64);
  torch::Tensor other = torch::randint(c.vocab_size, {1, 16}, torch::kInt64);
  other.select(1, 5).fill_(7);  // position 5 is not a worker at phase 0 (workers 3, 7, ...)
  const torch::Tensor a = model->Forward(tokens, 0).logits;
  const torch::Tensor b = model->Forward(other, 0).logits;
  EXPECT_LE(MaxAbsDiff(a.select(1, 5), b.select(1, 5)), 1e-6);
  EXPECT_LE(MaxAbsDiff(a.select(1, 5), a.select(1, 4)), 1e-6);
  EXPECT_GT(MaxAbsDiff(a.select(1, 7), b.select(1, 7)), 1e-4);  // a worker sees its context
}

TEST(SparseDepthTest, RoutingIsNonTrivialAndTheRouterLearnsFromTheLmLoss) {
  ModelConfig c = TinyConfig("sparse_depth");
  c.sparse_aux_loss_weight = 0.0;  // the gradient below must come from the LM loss alone
  auto model = Build(c);
  model->train();
  torch::manual_seed(4);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {4, c.seq_len + 1}, torch::kInt64);
  const ModelOutput out = model->Forward(tokens.narrow(1, 0, c.seq_len));
  const double layers = out.stats.at("layers_per_token").item<double>();
  EXPECT_GT(layers, c.sparse_dense_layers + 0.05);
  EXPECT_LT(layers, c.n_layers - 0.05);
  EXPECT_DOUBLE_EQ(out.aux_loss.item<double>(), 0.0);
  MaskedCrossEntropy(out.logits, tokens.narrow(1, 1, c.seq_len), out.train_positions).backward();
  for (const auto& item : model->named_parameters()) {
    if (item.key().rfind("routers.", 0) == 0) {
      EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
    }
  }
}

TEST(SparseDepthTest, AuxLossPullsRoutingTowardCapacity) {
  ModelConfig c = TinyConfig("sparse_depth");
  c.sparse_capacity = 0.3;  // slot bound: ceil(1.5 * 0.3 * T) = 0.45 T
  c.sparse_aux_loss_weight = 1.0;
  auto model = Build(c);
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(3e-2));
  const torch::Tensor tokens = torch::randint(c.vocab_size, {4, c.seq_len}, torch::kInt64);
  const double before = model->Forward(tokens).stats.at("layers_per_token").item<double>();
  for (int step = 0; step < 60; ++step) {
    optimizer.zero_grad();
    model->Forward(tokens).aux_loss.backward();
    optimizer.step();
  }
  const double after = model->Forward(tokens).stats.at("layers_per_token").item<double>();
  // One dense layer plus two routed layers: first near the 0.45 slot bound (an untrained router
  // wants about half the tokens), then pulled to roughly 30% each.
  EXPECT_GT(before, 1.0 + 2 * 0.4);
  EXPECT_NEAR(after, 1.0 + 2 * 0.3, 0.1);
}

TEST(RegistryTest, EveryArchHasAFactoryAndNoFactoryLacksRules) {
  EXPECT_EQ(ArchsWithFactories(), KnownArchs());
}

TEST(RegistryTest, RejectsUnknownArchAndBadConfig) {
  ModelConfig c = TinyConfig("transformer_xl");
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(c);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& arch : KnownArchs()) {
    EXPECT_NE(model.status().message().find(arch), std::string::npos) << model.status();
  }
  c = TinyConfig("hybrid");
  c.hybrid_attention_layers = {true};
  model = CreateModel(c);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("model.hybrid.layer_types"), std::string::npos);
}

TEST(MaskedCrossEntropyTest, AveragesOverMaskedPositionsOnly) {
  torch::manual_seed(5);
  const torch::Tensor logits = torch::randn({2, 5, 7});
  const torch::Tensor targets = torch::randint(7, {2, 5}, torch::kInt64);
  const torch::Tensor mask = torch::tensor({false, true, false, true, true});
  const torch::Tensor log_probs = torch::log_softmax(logits, -1);
  double expected = 0.0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t : {1, 3, 4}) {
      expected -= log_probs[b][t][targets[b][t].item<int64_t>()].item<double>();
    }
  }
  expected /= 6.0;
  EXPECT_NEAR(MaskedCrossEntropy(logits, targets, mask).item<double>(), expected, 1e-6);
  EXPECT_NEAR(
      MaskedCrossEntropy(logits, targets, torch::ones({5}, torch::kBool)).item<double>(),
      torch::nn::functional::cross_entropy(logits.view({10, 7}), targets.view({10})).item<double>(),
      1e-6);
}

}  // namespace
}  // namespace gauntlet
