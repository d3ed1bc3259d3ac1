#include "trainer/eval/evaluator.h"

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/data/batch_sampler.h"
#include "trainer/data/test_util.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;

// A parameter-free model whose logits come from a function of (tokens, phase). With phases > 1
// it marks positions like the worker arch: (t + phase) % k == k - 1, plus the last position.
class ToyModel : public LanguageModelImpl {
 public:
  using LogitsFn = std::function<torch::Tensor(const torch::Tensor& tokens, int64_t phase)>;
  struct Call {
    int64_t phase;
    torch::Tensor tokens;
    bool training;
    bool grad_enabled;
  };

  ToyModel(int64_t vocab, int64_t seq_len, int64_t phases, LogitsFn fn)
      : LanguageModelImpl(MakeConfig(vocab, seq_len)), phases_(phases), fn_(std::move(fn)) {}

  ModelOutput Run(const torch::Tensor& tokens, int64_t phase, Head /*head*/) override {
    calls.push_back({phase, tokens.clone(), is_training(), torch::GradMode::is_enabled()});
    ModelOutput out;
    out.logits = fn_(tokens, phase);
    out.train_positions = TrainPositions(tokens.size(1), phase);
    out.aux_loss = torch::zeros({});
    return out;
  }
  int64_t NumEvalPhases() const override { return phases_; }
  torch::Tensor TrainPositions(int64_t seq_len, int64_t phase) const override {
    torch::Tensor t = torch::arange(seq_len);
    torch::Tensor marks = phases_ == 1
                              ? torch::ones({seq_len}, torch::kBool)
                              : ((t + phase) % phases_ == phases_ - 1) | (t == seq_len - 1);
    if (gap_at_zero) marks.index_put_({0}, false);
    return marks;
  }

  std::vector<Call> calls;
  bool gap_at_zero = false;

 private:
  static ModelConfig MakeConfig(int64_t vocab, int64_t seq_len) {
    ModelConfig c;
    c.arch = "toy";
    c.vocab_size = vocab;
    c.seq_len = seq_len;
    return c;
  }
  int64_t phases_;
  LogitsFn fn_;
};

ToyModel::LogitsFn Uniform(int64_t vocab) {
  return [vocab](const torch::Tensor& tokens, int64_t) {
    return torch::zeros({tokens.size(0), tokens.size(1), vocab});
  };
}

// Logits that depend on the input token, so losses differ from window to window.
ToyModel::LogitsFn InputDependent(int64_t vocab) {
  return [vocab](const torch::Tensor& tokens, int64_t phase) {
    return torch::one_hot(tokens, vocab).to(torch::kFloat32) * 3.0 +
           torch::one_hot((tokens + 1 + phase) % vocab, vocab).to(torch::kFloat32) * 1.5;
  };
}

EvalOptions Options(EvalOptions::Protocol protocol, int64_t batch_size) {
  EvalOptions o;
  o.protocol = protocol;
  o.batch_size = batch_size;
  return o;
}

TokenDataset Dataset(const std::string& text) {
  absl::StatusOr<TokenDataset> ds = testing::OpenTextDataset(text);
  if (!ds.ok()) throw std::runtime_error(ds.status().ToString());
  return *ds;
}

const std::string kAlphabet = "abcdefghijk\n";  // V = 12

TEST(EvaluatorTest, UniformLogitsGiveLnVOverEveryPosition) {
  const TokenDataset ds = Dataset(testing::RandomText(5000, 1, kAlphabet));
  ASSERT_EQ(ds.vocab_size(), 12);
  ToyModel model(12, 16, 1, Uniform(12));
  absl::StatusOr<EvalResult> r =
      Evaluate(model, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t windows = (ds.val_size() - 1) / 16;  // 499 / 16 = 31
  EXPECT_EQ(r->count, windows * 16);
  EXPECT_EQ(r->tokens_scored, windows * 16);
  EXPECT_NEAR(r->val_loss, std::log(12.0), 1e-6);
  EXPECT_NEAR(r->val_loss_native, std::log(12.0), 1e-6);
  EXPECT_NEAR(r->bits_per_token, std::log2(12.0), 1e-6);
  EXPECT_GE(r->seconds, 0);

  EvalOptions capped = Options(EvalOptions::Protocol::kFair, 4);
  capped.max_tokens = 40;  // two whole windows
  EXPECT_EQ(Evaluate(model, ds, capped, torch::kCPU)->count, 32);
}

TEST(EvaluatorTest, FairWindowsAreNonOverlappingValWindowsFromOffsetZero) {
  const TokenDataset ds = Dataset(testing::RandomText(3000, 2, kAlphabet));
  ToyModel model(12, 20, 3, Uniform(12));
  ASSERT_TRUE(Evaluate(model, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU).ok());
  const int64_t windows = (ds.val_size() - 1) / 20;  // 299 / 20 = 14: batches of 4,4,4,2
  ASSERT_EQ(model.calls.size(), 4u * 3u);
  std::vector<torch::Tensor> phase0_rows;
  for (size_t c = 0; c < model.calls.size(); ++c) {
    EXPECT_EQ(model.calls[c].phase, static_cast<int64_t>(c % 3));
    EXPECT_TRUE(torch::equal(model.calls[c].tokens, model.calls[c - c % 3].tokens));
    if (c % 3 == 0) phase0_rows.push_back(model.calls[c].tokens);
  }
  const torch::Tensor rows = torch::cat(phase0_rows);
  ASSERT_EQ(rows.size(0), windows);
  for (int64_t i = 0; i < windows; ++i) {
    EXPECT_TRUE(torch::equal(rows[i], *WindowTensor(ds, Split::kVal, i * 20, 20))) << i;
  }
}

// A cyclic corpus makes the next token a function of the current one, so the model can give
// each position a loss that reveals which phase's logits were scored.
TEST(EvaluatorTest, EachPositionIsScoredOnceWithTheLogitsOfItsPhase) {
  std::string text;
  while (text.size() < 4000) text += "abcdefg";
  const TokenDataset ds = Dataset(text);
  ASSERT_EQ(ds.vocab_size(), 7);
  constexpr int64_t kT = 10, kPhases = 3;
  // Phase 0's own positions get uniform logits (CE ln 7); positions owned by phases 1 and 2
  // (t with (t + p) % 3 == 2, except the last, which phase 0 owns) get +5 on the true next token;
  // every other position gets +100 on a wrong token, which would blow up the mean if scored.
  auto fn = [](const torch::Tensor& tokens, int64_t phase) {
    const int64_t rows = tokens.size(0);
    torch::Tensor logits = torch::zeros({rows, kT, 7});
    for (int64_t t = 0; t < kT; ++t) {
      const int64_t owner = t == kT - 1 ? 0 : (kPhases - 1 - t % kPhases + kPhases) % kPhases;
      const torch::Tensor column = tokens.select(1, t);
      if (owner != phase) {
        logits.select(1, t).copy_(torch::one_hot((column + 3) % 7, 7).to(torch::kFloat32) * 100);
      } else if (phase != 0) {
        logits.select(1, t).copy_(torch::one_hot((column + 1) % 7, 7).to(torch::kFloat32) * 5);
      }
    }
    return logits;
  };
  ToyModel model(7, kT, kPhases, fn);
  absl::StatusOr<EvalResult> r =
      Evaluate(model, ds, Options(EvalOptions::Protocol::kFair, 8), torch::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  const double ln7 = std::log(7.0);
  const double oracle = std::log(std::exp(5.0) + 6.0) - 5.0;
  const double native_per_window = 4;  // phase 0 marks t = 2, 5, 8 and the last, 9
  EXPECT_NEAR(r->val_loss, (native_per_window * ln7 + (kT - native_per_window) * oracle) / kT,
              1e-6);
  EXPECT_NEAR(r->val_loss_native, ln7, 1e-6);
  const int64_t windows = (ds.val_size() - 1) / kT;
  EXPECT_EQ(r->count, windows * kT);
  EXPECT_EQ(r->native_count, windows * native_per_window);
}

// The reference protocol, recomputed independently: per-batch mean CE over phase 0's positions
// of stride-1 windows, averaged over batches; the last batch is short when val runs out.
double SeedReference(ToyModel& model, const TokenDataset& ds, int64_t batch, int64_t batches) {
  const int64_t T = model.config().seq_len;
  const int64_t available = ds.val_size() - T;
  const torch::Tensor mask = model.TrainPositions(T, 0);
  double total = 0;
  int64_t n = 0;
  for (int64_t j = 0; j < batches && j * batch < available; ++j, ++n) {
    std::vector<torch::Tensor> in, tgt;
    for (int64_t w = j * batch; w < std::min(available, (j + 1) * batch); ++w) {
      const torch::Tensor window = *WindowTensor(ds, Split::kVal, w, T + 1);
      in.push_back(window.narrow(0, 0, T));
      tgt.push_back(window.narrow(0, 1, T));
    }
    const torch::Tensor logp = torch::log_softmax(model.Forward(torch::stack(in), 0).logits, -1);
    const torch::Tensor nll = -logp.gather(-1, torch::stack(tgt).unsqueeze(-1)).squeeze(-1);
    total += nll.index({torch::indexing::Slice(), mask}).mean().item<double>();
  }
  return total / n;
}

TEST(EvaluatorTest, SeedProtocolMatchesTheReferenceDefinition) {
  const TokenDataset ds = Dataset(testing::RandomText(2000, 3, kAlphabet));
  ToyModel model(12, 16, 4, InputDependent(12));
  EvalOptions options = Options(EvalOptions::Protocol::kSeed, 5);
  options.seed_batches = 7;
  absl::StatusOr<EvalResult> r = Evaluate(model, ds, options, torch::kCPU);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->count, 7);
  EXPECT_EQ(r->tokens_scored, 7 * 5 * 4);  // T=16, k=4: positions 3, 7, 11, 15
  EXPECT_NEAR(r->val_loss, SeedReference(model, ds, 5, 7), 1e-6);
  EXPECT_EQ(r->val_loss, r->val_loss_native);
  // Batches start at val offsets 0, 5, 10, ...: overlapping stride-1 windows.
  EXPECT_TRUE(torch::equal(model.calls[1].tokens[0], *WindowTensor(ds, Split::kVal, 5, 16)));

  // More batches than val holds (200 - 16 = 184 windows): 37 batches, the last of 4 windows.
  options.seed_batches = 1000;
  model.calls.clear();
  r = Evaluate(model, ds, options, torch::kCPU);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 37);
  EXPECT_EQ(model.calls.back().tokens.size(0), 4);
  EXPECT_NEAR(r->val_loss, SeedReference(model, ds, 5, 1000), 1e-6);
}

TEST(EvaluatorTest, DataParallelShardsSumToTheSingleRankResult) {
  const TokenDataset ds = Dataset(testing::RandomText(6000, 4, kAlphabet));
  for (auto protocol : {EvalOptions::Protocol::kFair, EvalOptions::Protocol::kSeed}) {
    ToyModel model(12, 16, 2, InputDependent(12));
    const EvalOptions options = Options(protocol, 3);
    const EvalResult whole = *Evaluate(model, ds, options, torch::kCPU, 0, 1);
    EvalResult reduced;
    for (int rank = 0; rank < 3; ++rank) {
      const EvalResult part = *Evaluate(model, ds, options, torch::kCPU, rank, 3);
      EXPECT_GT(part.count, 0) << ProtocolName(protocol) << " rank " << rank;
      reduced.loss_sum += part.loss_sum;
      reduced.count += part.count;
      reduced.native_loss_sum += part.native_loss_sum;
      reduced.native_count += part.native_count;
      reduced.tokens_scored += part.tokens_scored;
    }
    FinishEvalResult(reduced);
    EXPECT_EQ(reduced.count, whole.count) << ProtocolName(protocol);
    EXPECT_EQ(reduced.tokens_scored, whole.tokens_scored);
    EXPECT_NEAR(reduced.val_loss, whole.val_loss, 1e-9) << ProtocolName(protocol);
    EXPECT_NEAR(reduced.val_loss_native, whole.val_loss_native, 1e-9);
    EXPECT_NEAR(reduced.bits_per_token, whole.bits_per_token, 1e-9);
  }
}

TEST(EvaluatorTest, RunsInEvalModeWithoutGradAndRestoresTheMode) {
  const TokenDataset ds = Dataset(testing::RandomText(2000, 5, kAlphabet));
  ToyModel model(12, 16, 1, Uniform(12));
  model.train();
  ASSERT_TRUE(Evaluate(model, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU).ok());
  ASSERT_FALSE(model.calls.empty());
  for (const auto& call : model.calls) {
    EXPECT_FALSE(call.training);
    EXPECT_FALSE(call.grad_enabled);
  }
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(torch::GradMode::is_enabled());
  model.eval();
  ASSERT_TRUE(Evaluate(model, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU).ok());
  EXPECT_FALSE(model.is_training());

  // An exception escaping the model still restores training mode.
  ToyModel throwing(12, 16, 1, [](const torch::Tensor&, int64_t) -> torch::Tensor {
    TORCH_CHECK(false, "boom");
  });
  throwing.train();
  EXPECT_THROW(Evaluate(throwing, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU),
               c10::Error);
  EXPECT_TRUE(throwing.is_training());
}

TEST(EvaluatorTest, ErrorsAreStatusesNamingTheProblem) {
  const TokenDataset ds = Dataset(testing::RandomText(300, 6, kAlphabet));  // val: 30 tokens
  ToyModel too_long(12, 30, 1, Uniform(12));
  absl::StatusOr<EvalResult> r =
      Evaluate(too_long, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.seq_len + 1 = 31"));

  ToyModel gap(12, 8, 2, Uniform(12));
  gap.gap_at_zero = true;
  r = Evaluate(gap, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(r.status().message(), HasSubstr("position 0 of 8 without trained logits"));

  ToyModel ok(12, 8, 1, Uniform(12));
  EXPECT_EQ(
      Evaluate(ok, ds, Options(EvalOptions::Protocol::kFair, 4), torch::kCPU, 2, 2).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gauntlet
