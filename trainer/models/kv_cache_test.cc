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

std::string DtypeSuffix(torch::ScalarType dtype) {
  if (dtype == torch::kFloat64) return "_f64";
  return dtype == torch::kBFloat16 ? "_bf16" : "_f32";
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.arch << DtypeSuffix(c.dtype); }

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.arch + DtypeSuffix(info.param.dtype);
  std::replace(name.begin(), name.end(), '/', '_');
  return name;
}

// fp32: summation order differs between a window and a cache; fp64: only the router, whose
// logit sparse_depth rounds to float32 (as Run does), can differ by a float32 ulp. bf16 (weights,
// activations and cache all bfloat16, as deployed): every rounding of an 8-bit mantissa
// (relative 2^-8 = 0.0039) can land differently when a window and a cache sum in different
// orders; through the tiny models' 2-4 layers that stays below 0.0625 absolute on logits of
// magnitude up to about 1.5, i.e. a few bf16 ulps. A bug (a wrong position, a stale key) moves
// logits by O(1).
double Tolerance(const ModelConfig& c, torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return 0.0625;
  if (dtype != torch::kFloat64) return 2e-5;
  return c.arch == "sparse_depth" ? 1e-6 : 1e-10;
}

constexpr int64_t kBatch = 3;
constexpr int64_t kMaxLen = 40;

// The logits decoding must reproduce at position t: Forward over the window tokens[:, :t+1]
// (sparse_depth: over the cache's whole window, whose slot bound its routing uses).
torch::Tensor Reference(LanguageModelImpl& model, const torch::Tensor& tokens, int64_t t,
                        int64_t phase) {
  torch::NoGradGuard no_grad;
  if (model.config().arch == "sparse_depth")
    return model.Forward(tokens, phase).logits.select(1, t);
  return model.Forward(tokens.narrow(1, 0, t + 1), phase).logits.select(1, t);
}

// Prefills a prompt in two chunks (the second appended to a non-empty cache), decodes the rest
// one token a step, and compares every step's logits with Reference, in every phase.
void ExpectDecodingEqualsForward(const ModelConfig& c, torch::ScalarType dtype) {
  auto model = Build(c, dtype);
  ASSERT_TRUE(model->SupportsKvCache());
  const double tolerance = Tolerance(c, dtype);
  torch::manual_seed(1);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {kBatch, kMaxLen}, torch::kInt64);
  for (int64_t phase = 0; phase < model->NumEvalPhases(); ++phase) {
    KvCache cache = model->NewKvCache(kBatch, kMaxLen, phase);
    const int64_t first = 7;
    const int64_t prompt = 13;
    torch::Tensor logits = model->Prefill(cache, tokens.narrow(1, 0, first));
    EXPECT_LE(MaxAbsDiff(logits, Reference(*model, tokens, first - 1, phase)), tolerance)
        << "phase " << phase;
    logits = model->Prefill(cache, tokens.narrow(1, first, prompt - first));
    EXPECT_LE(MaxAbsDiff(logits, Reference(*model, tokens, prompt - 1, phase)), tolerance)
        << "phase " << phase;
    const int64_t bytes = cache.Bytes();
    for (int64_t t = prompt; t < kMaxLen; ++t) {
      logits = model->DecodeStep(cache, tokens.select(1, t));
      ASSERT_EQ(logits.sizes(), torch::IntArrayRef({kBatch, c.vocab_size}));
      EXPECT_EQ(logits.scalar_type(), dtype);
      EXPECT_LE(MaxAbsDiff(logits, Reference(*model, tokens, t, phase)), tolerance)
          << "phase " << phase << " position " << t;
    }
    EXPECT_EQ(cache.length, kMaxLen);
    // Buffers were allocated at full length by the prompt and only written in place since.
    EXPECT_EQ(cache.Bytes(), bytes);
    // The torch-free formula counts exactly the key/value buffers the model allocated.
    const int64_t value_bytes = torch::elementSize(dtype);
    EXPECT_NEAR(static_cast<double>(cache.KeyValueBytes()),
                KvCacheBytesPerToken(c, kMaxLen, value_bytes) * kBatch * kMaxLen, 1e-6);
    EXPECT_GT(cache.KeyValueBytes(), 0);
  }
}

class KvCacheTest : public ::testing::TestWithParam<Case> {
 protected:
  double Tolerance() const {
    return gauntlet::Tolerance(TinyConfig(GetParam().arch), GetParam().dtype);
  }
};

TEST_P(KvCacheTest, DecodingEqualsTheFullForwardPassTokenByToken) {
  ExpectDecodingEqualsForward(TinyConfig(GetParam().arch), GetParam().dtype);
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

// The shape-static step (what a CUDA graph captures) decodes exactly as the host-shaped one, and
// a host-shaped step may follow static ones.
TEST_P(KvCacheTest, StaticDecodeStepsEqualHostShapedSteps) {
  const ModelConfig c = TinyConfig(GetParam().arch);
  auto model = Build(c, GetParam().dtype);
  torch::manual_seed(3);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {kBatch, kMaxLen}, torch::kInt64);
  KvCache host = model->NewKvCache(kBatch, kMaxLen);
  KvCache fixed = model->NewKvCache(kBatch, kMaxLen);
  const int64_t prompt = 13;
  model->Prefill(host, tokens.narrow(1, 0, prompt));
  model->Prefill(fixed, tokens.narrow(1, 0, prompt));
  if (!model->SupportsStaticDecode()) {
    EXPECT_TRUE(c.arch == "worker" || c.arch == "sparse_depth") << c.arch;
    EXPECT_THROW(model->DecodeStepStatic(fixed, tokens.select(1, prompt)), c10::Error);
    return;
  }
  for (int64_t t = prompt; t < kMaxLen; ++t) {
    const torch::Tensor expected = model->DecodeStep(host, tokens.select(1, t));
    const torch::Tensor logits = t == 30 ? model->DecodeStep(fixed, tokens.select(1, t))
                                         : model->DecodeStepStatic(fixed, tokens.select(1, t));
    EXPECT_LE(MaxAbsDiff(logits, expected), Tolerance()) << "position " << t;
  }
  EXPECT_EQ(fixed.length, kMaxLen);
  EXPECT_EQ(fixed.position.item<int64_t>(), kMaxLen);
  EXPECT_THROW(model->DecodeStepStatic(fixed, tokens.select(1, 0)), c10::Error);  // full
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
                           "mixed", "looped", "matformer/joint", "attn_drop"}) {
    cases.push_back({arch, torch::kFloat32});
    cases.push_back({arch, torch::kFloat64});
    cases.push_back({arch, torch::kBFloat16});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Archs, KvCacheTest, ::testing::ValuesIn(Cases()), CaseName);

// With a small capacity the slot bound binds: routing then depends on the window length (so
// Forward over a prefix differs from Forward over the whole window), and decoding still equals
// the whole window's forward pass.
TEST(SparseDepthKvCacheTest, DecodingFollowsTheWindowsSlotBoundWhenItBinds) {
  ModelConfig c = TinyConfig("sparse_depth");
  c.sparse_capacity = 0.1;  // C = 6 of 40 slots
  auto model = Build(c, torch::kFloat32);
  torch::manual_seed(1);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {kBatch, kMaxLen}, torch::kInt64);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor whole = model->Forward(tokens).logits.narrow(1, 0, 8);
    const torch::Tensor prefix = model->Forward(tokens.narrow(1, 0, 8)).logits;
    ASSERT_GT(MaxAbsDiff(whole, prefix), 1e-3) << "the bound never binds: the test is vacuous";
  }
  ExpectDecodingEqualsForward(c, torch::kFloat32);
  ExpectDecodingEqualsForward(c, torch::kFloat64);
}

}  // namespace
}  // namespace gauntlet
