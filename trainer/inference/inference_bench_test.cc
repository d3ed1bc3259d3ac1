#include "trainer/inference/inference_bench.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>

#include "common/model_config.h"
#include "trainer/models/registry.h"
#include "trainer/models/tiny_configs.h"
#include "common/clock.h"
#include "common/testing/fake_clock.h"

namespace gauntlet {
namespace {

// Every reading is `tick` after the previous one, so each timed run takes `tick`.
FakeClock TickingClock(absl::Duration tick) { return FakeClock(absl::UnixEpoch(), tick); }

std::shared_ptr<LanguageModelImpl> Build(const std::string& arch) {
  torch::manual_seed(0);
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(TinyConfig(arch));
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

InferenceBenchOptions SmallOptions() {
  InferenceBenchOptions options;
  options.prefill_contexts = {16, 64};
  options.decode_batches = {1, 4};
  options.decode_context = 20;
  options.decode_steps = 8;
  options.warmup = 1;
  options.repeats = 2;
  return options;
}

TEST(InferenceBenchTest, ReportsEveryMeasurementFromTheClock) {
  auto model = Build("standard");
  FakeClock clock = TickingClock(absl::Milliseconds(500));
  absl::StatusOr<InferenceBenchResult> result =
      RunInferenceBench(*model, SmallOptions(), torch::Device(torch::kCPU), clock);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->prefill.size(), 2u);
  EXPECT_EQ(result->prefill[0].context, 16);
  EXPECT_EQ(result->prefill[1].context, 64);
  EXPECT_DOUBLE_EQ(result->prefill[1].ms, 500.0);
  ASSERT_EQ(result->decode.size(), 2u);
  EXPECT_EQ(result->decode[1].batch, 4);
  EXPECT_DOUBLE_EQ(result->decode[1].ms_per_step, 500.0 / 8);
  EXPECT_DOUBLE_EQ(result->decode[1].tokens_per_s, 4 * 8 / 0.5);
  EXPECT_DOUBLE_EQ(result->kv_cache_bytes_per_token,
                   KvCacheBytesPerToken(model->config(), 28, /*bytes_per_value=*/4));
  EXPECT_EQ(result->parameter_bytes, model->NumParameters() * 4);
  EXPECT_EQ(result->peak_memory_bytes, 0);  // CPU: not measured
}

TEST(InferenceBenchTest, RunsEveryArchOnTheRealClock) {
  for (const char* arch : {"worker", "sparse_depth", "hybrid", "sqa/sqa", "looped"}) {
    auto model = Build(arch);
    MonotonicClock clock;
    absl::StatusOr<InferenceBenchResult> result =
        RunInferenceBench(*model, SmallOptions(), torch::Device(torch::kCPU), clock);
    ASSERT_TRUE(result.ok()) << arch << ": " << result.status();
    for (const DecodeTiming& d : result->decode) EXPECT_GT(d.tokens_per_s, 0) << arch;
    for (const PrefillTiming& p : result->prefill) EXPECT_GT(p.ms, 0) << arch;
    EXPECT_GT(result->kv_cache_bytes_per_token, 0) << arch;
  }
}

TEST(InferenceBenchTest, TimesTheStaticDecodeStepWhereTheArchHasOne) {
  InferenceBenchOptions options = SmallOptions();
  options.static_decode = true;
  MonotonicClock clock;
  auto standard = Build("standard");
  absl::StatusOr<InferenceBenchResult> result =
      RunInferenceBench(*standard, options, torch::Device(torch::kCPU), clock);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->decode[0].tokens_per_s, 0);
  auto worker = Build("worker");
  result = RunInferenceBench(*worker, options, torch::Device(torch::kCPU), clock);
  EXPECT_NE(result.status().message().find("static_decode"), std::string::npos);
}

TEST(InferenceBenchTest, RejectsLengthsBeyondTheModelsWindow) {
  auto model = Build("standard");  // seq_len 64
  FakeClock clock = TickingClock(absl::Seconds(1));
  InferenceBenchOptions options = SmallOptions();
  options.prefill_contexts = {65};
  absl::StatusOr<InferenceBenchResult> result =
      RunInferenceBench(*model, options, torch::Device(torch::kCPU), clock);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("prefill_contexts"), std::string::npos);
  options = SmallOptions();
  options.decode_context = 60;
  result = RunInferenceBench(*model, options, torch::Device(torch::kCPU), clock);
  EXPECT_NE(result.status().message().find("decode_context"), std::string::npos);
  options = SmallOptions();
  options.decode_batches = {0};
  result = RunInferenceBench(*model, options, torch::Device(torch::kCPU), clock);
  EXPECT_NE(result.status().message().find("decode_batches"), std::string::npos);
}

}  // namespace
}  // namespace gauntlet
