// An inference trial on CPU: the spec's measurements reach the summary, weights come from a
// trained trial's checkpoint or the seed, and bad checkpoints fail as bad specs.

#include "trainer/inference/inference_trial.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "common/spec_yaml.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/data/token_dataset.h"
#include "trainer/models/registry.h"
#include "trainer/train/exit_code.h"

namespace gauntlet {
namespace {

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A tiny standard model's inference trial over a small character corpus.
v1::TrialSpec Spec(const std::string& dir, const std::string& extra = "") {
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 200; ++i) corpus << "the quick brown fox jumps over the lazy dog\n";
  }
  absl::StatusOr<v1::TrialSpec> spec = ParseTrialSpecYaml(absl::StrCat(
      "kind: inference\n"
      "data: {path: ", dir, "/corpus.txt, cache_dir: ", dir, "/cache}\n"
      "model: {arch: standard, size: tiny}\n"
      "train: {precision: fp32}\n"
      "seed: 3\n"
      "inference: {prefill_contexts: [8, 32], decode_batches: [1, 2], decode_context: 6, "
      "decode_steps: 4, repeats: 1", extra, "}\n"));
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

TEST(InferenceTrialTest, ReportsEveryMeasurementInTheSummary) {
  const std::string dir = TempDir("summary");
  const v1::TrialSpec spec = Spec(dir);
  MonotonicClock clock;
  std::ostringstream log;
  absl::StatusOr<v1::TrainerSummary> summary =
      RunInferenceTrial(spec, torch::Device(torch::kCPU), clock, &log, nullptr);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->arch(), "standard");
  EXPECT_GT(summary->params(), 0);
  const v1::InferenceResult& r = summary->inference();
  EXPECT_EQ(r.precision(), "fp32");
  EXPECT_EQ(r.device(), "cpu");
  EXPECT_EQ(r.weights(), "random (seed 3)");
  ASSERT_EQ(r.prefill_size(), 2);
  EXPECT_EQ(r.prefill(1).context(), 32);
  EXPECT_GT(r.prefill(1).seconds(), 0);
  ASSERT_EQ(r.decode_size(), 2);
  EXPECT_EQ(r.decode(1).batch(), 2);
  EXPECT_GT(r.decode(1).tokens_per_second(), 0);
  EXPECT_EQ(r.decode(1).mode(), "eager");
  EXPECT_EQ(r.decode(1).bandwidth_bound_seconds(), 0);  // CPU: bandwidth unknown
  // Two rows read twice the cache and embedding rows a row reads, and the same weights.
  EXPECT_GT(r.decode(1).bytes_per_step(), r.decode(0).bytes_per_step());
  EXPECT_LT(r.decode(1).bytes_per_step(), 2 * r.decode(0).bytes_per_step());
  EXPECT_EQ(r.parameter_bytes(), summary->params() * 4);
  EXPECT_GT(r.kv_cache_bytes_per_token(), 0);
  EXPECT_NE(log.str().find("inference: decode batch   2"), std::string::npos) << log.str();
}

TEST(InferenceTrialTest, LoadsTheLastCheckpointOfATrainedTrial) {
  const std::string dir = TempDir("checkpoint");
  v1::TrialSpec spec = Spec(dir);
  const std::string run_dir = dir + "/exp-1-0";
  spec.mutable_inference()->set_checkpoint_path(run_dir);
  MonotonicClock clock;
  // No checkpoint there yet.
  absl::StatusOr<v1::TrainerSummary> summary =
      RunInferenceTrial(spec, torch::Device(torch::kCPU), clock, nullptr, nullptr);
  EXPECT_EQ(ExitCodeOf(summary.status()), ExitCode::kBadSpec);
  EXPECT_NE(summary.status().message().find("no checkpoint"), std::string::npos);

  // A checkpoint of the same model with every weight 0.5: the trial reports loading it.
  absl::StatusOr<TokenDataset> data = TokenDataset::Open(spec.data());
  ASSERT_TRUE(data.ok()) << data.status();
  absl::StatusOr<ModelConfig> config = ResolveModelConfig(spec.model(), data->vocab_size());
  ASSERT_TRUE(config.ok()) << config.status();
  auto model = CreateModel(*config);
  ASSERT_TRUE(model.ok());
  Checkpoint c;
  c.step = 7;
  for (const auto& item : (*model)->named_parameters()) {
    c.tensors["model/" + item.key()] = torch::full_like(item.value(), 0.5);
  }
  ASSERT_TRUE(CheckpointDir(run_dir + "/checkpoints", 2).Save(c).ok());
  summary = RunInferenceTrial(spec, torch::Device(torch::kCPU), clock, nullptr, nullptr);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->inference().weights(), run_dir + " step 7");

  // A checkpoint of another model does not load.
  spec.mutable_model()->set_d_model(2 * config->d_model);
  summary = RunInferenceTrial(spec, torch::Device(torch::kCPU), clock, nullptr, nullptr);
  EXPECT_EQ(ExitCodeOf(summary.status()), ExitCode::kBadSpec);
  EXPECT_NE(summary.status().message().find("does not match this model"), std::string::npos)
      << summary.status();
}

}  // namespace
}  // namespace gauntlet
