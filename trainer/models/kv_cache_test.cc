// KV-cache decoding equals the full forward pass, token by token, for every architecture.

#include "trainer/models/kv_cache.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/model_config.h"
#include "trainer/models/model.h"
#include "trainer/models/registry.h"
#include "trainer/models/tiny_configs.h"

namespace gauntlet {
namespace {

std::shared_ptr<LanguageModelImpl> Build(const ModelConfig& c, torch::ScalarType dtype) {
  torch::manual_seed(0);
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(c);
  EXPECT_TRUE(model.ok()) << model.status();
  (*model)->eval();
  (*model)->to(dtype);
  return *model;
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

struct Case {
  std::string arch;
  torch::ScalarType dtype;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.arch << (c.dtype == torch::kFloat64 ? " float64" : " float32");
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.arch + (info.param.dtype == torch::kFloat64 ? "_f64" : "_f32");
  std::replace(name.begin(), name.end(), '/', '_');
  return name;
}

class KvCacheTest : public ::testing::TestWithParam<Case> {
 protected:
  double Tolerance() const { return GetParam().dtype == torch::kFloat64 ? 1e-10 : 2e-5; }
};

constexpr int64_t kBatch = 3;
constexpr int64_t kMaxLen = 40;

// The logits decoding must reproduce at position t: Forward over the window tokens[:, :t+1]
// (sparse_depth: over the cache's whole window, whose slot bound its routing uses).
torch::Tensor Reference(LanguageModelImpl& model, const torch::Tensor& tokens, int64_t t,
                        int64_t phase) {
  torch::NoGradGuard no_grad;
  if (model.config().arch == "sparse_depth") return model.Forward(tokens, phase).logits.select(1, t);
  return model.Forward(tokens.narrow(1, 0, t + 1), phase).logits.select(1, t);
}

TEST_P(KvCacheTest, DecodingEqualsTheFullForwardPassTokenByToken) {
  const ModelConfig c = TinyConfig(GetParam().arch);
  auto model = Build(c, GetParam().dtype);
  ASSERT_TRUE(model->SupportsKvCache());
  torch::manual_seed(1);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {kBatch, kMaxLen}, torch::kInt64);
  for (int64_t phase = 0; phase < model->NumEvalPhases(); ++phase) {
    // The prompt in two chunks (the second appended to a non-empty cache), then one token a step.
    KvCache cache = model->NewKvCache(kBatch, kMaxLen, phase);
    const int64_t first = 7;
    const int64_t prompt = 13;
    torch::Tensor logits = model->Prefill(cache, tokens.narrow(1, 0, first));
    EXPECT_LE(MaxAbsDiff(logits, Reference(*model, tokens, first - 1, phase)), Tolerance())
        << "phase " << phase;
    logits = model->Prefill(cache, tokens.narrow(1, first, prompt - first));
    EXPECT_LE(MaxAbsDiff(logits, Reference(*model, tokens, prompt - 1, phase)), Tolerance())
        << "phase " << phase;
    const int64_t bytes = cache.Bytes();
    for (int64_t t = prompt; t < kMaxLen; ++t) {
      logits = model->DecodeStep(cache, tokens.select(1, t));
      ASSERT_EQ(logits.sizes(), torch::IntArrayRef({kBatch, c.vocab_size}));
      EXPECT_EQ(logits.scalar_type(), GetParam().dtype);
      EXPECT_LE(MaxAbsDiff(logits, Reference(*model, tokens, t, phase)), Tolerance())
          << "phase " << phase << " position " << t;
    }
    EXPECT_EQ(cache.length, kMaxLen);
    // Buffers were allocated at full length by the prompt and only written in place since.
    EXPECT_EQ(cache.Bytes(), bytes);
    // The torch-free formula counts exactly the key/value buffers the model allocated.
    const int64_t value_bytes = GetParam().dtype == torch::kFloat64 ? 8 : 4;
    EXPECT_NEAR(static_cast<double>(cache.KeyValueBytes()),
                KvCacheBytesPerToken(c, kMaxLen, value_bytes) * kBatch * kMaxLen, 1e-6);
    EXPECT_GT(cache.KeyValueBytes(), 0);
  }
}

TEST_P(KvCacheTest, RowsDecodeIndependently) {
  const ModelConfig c = TinyConfig(GetParam().arch);
  auto model = Build(c, GetParam().dtype);
  torch::manual_seed(2);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {kBatch, 24}, torch::kInt64);
  KvCache batched = model->NewKvCache(kBatch, 24);
  KvCache alone = model->NewKvCache(1, 24);
  model->Prefill(batched, tokens.narrow(1, 0, 5));
  model->Prefill(alone, tokens.narrow(0, 1, 1).narrow(1, 0, 5));
  for (int64_t t = 5; t < 24; ++t) {
    const torch::Tensor a = model->DecodeStep(batched, tokens.select(1, t));
    const torch::Tensor b = model->DecodeStep(alone, tokens.narrow(0, 1, 1).select(1, t));
    EXPECT_LE(MaxAbsDiff(a.narrow(0, 1, 1), b), Tolerance()) << "position " << t;
  }
}

TEST_P(KvCacheTest, RejectsTokensPastMaxLenAndTrainingMode) {
  const ModelConfig c = TinyConfig(GetParam().arch);
  auto model = Build(c, GetParam().dtype);
  const torch::Tensor tokens = torch::zeros({1, 4}, torch::kInt64);
  KvCache cache = model->NewKvCache(1, 4);
  model->Prefill(cache, tokens);
  EXPECT_THROW(model->DecodeStep(cache, tokens.select(1, 0)), c10::Error);
  EXPECT_THROW(model->NewKvCache(1, c.seq_len + 1), c10::Error);
  model->train();
  KvCache fresh = model->NewKvCache(1, 4);
  EXPECT_THROW(model->Prefill(fresh, tokens), c10::Error);
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (const char* arch : {"standard", "worker", "sparse_depth", "hybrid", "sqa/sqa", "sqa/xsmqa",
                           "mixed", "looped",
                           "matformer/joint", "attn_drop"}) {
    cases.push_back({arch, torch::kFloat32});
    cases.push_back({arch, torch::kFloat64});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Archs, KvCacheTest, ::testing::ValuesIn(Cases()), CaseName);

}  // namespace
}  // namespace gauntlet
