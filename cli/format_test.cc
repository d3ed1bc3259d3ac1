#include "cli/format.h"

#include <gtest/gtest.h>

#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace gauntlet::cli {
namespace {

v1::CompareExperimentResponse Fixed() {
  v1::CompareExperimentResponse r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
    experiment_id: "exp-7"
    baseline: "standard"
    variants {
      variant: "standard" arch: "standard" params: 6400000 n: 3
      steps_per_second: 10.5 tokens_per_second: 230000
      val_loss_mean: 3.4123 val_loss_std: 0.0211 val_loss_native_mean: 3.4001
      train_loss_mean: 3.3
      val_loss_at { seconds: 300 mean: 3.9 std: 0.05 n: 3 }
      val_loss_at { seconds: 600 mean: 3.5 std: 0.03 n: 3 }
      speedup: 1 peak_memory_bytes: 6549825126 mfu: 0.41
    }
    variants {
      variant: "worker,k4" arch: "worker" params: 6500000 n: 1
      steps_per_second: 21 tokens_per_second: 460000
      val_loss_mean: 3.5 val_loss_std: 0 val_loss_native_mean: 3.1
      val_loss_at { seconds: 300 mean: 3.8 std: 0 n: 1 }
      speedup: 2 peak_memory_bytes: 0 mfu: 0
      vs_baseline { basis: "final" n: 1 n_baseline: 3 diff: 0.0877 ci_low: nan ci_high: nan
                    t: nan df: nan p_value: nan flag: "n < 3" }
      vs_baseline { basis: "matched_tokens" at: 2000 n: 3 n_baseline: 3 diff: -0.05
                    ci_low: -0.08 ci_high: -0.02 t: -4.5 df: 3.9 p_value: 0.011 }
      vs_baseline { basis: "matched_seconds" at: 600 n: 3 n_baseline: 3 diff: -0.01
                    ci_low: -0.05 ci_high: 0.03 t: -0.7 df: 3.8 p_value: 0.52
                    flag: "not significant" }
      epochs_max: 1.25 trials_past_one_epoch: "exp-7-3"
    }
    curves { trial_id: "exp-7-0" variant: "standard" seed: 1
             train_seconds: [ 1.5, 3 ] tokens: [ 1000, 2000 ] val_loss: [ 4, 3.5 ] }
  )pb", &r));
  return r;
}

TEST(FormatCompareTest, Table) {
  auto text = FormatCompare(Fixed(), "table");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text,
            "experiment exp-7 (baseline standard)\n"
            "variant              params  n  steps/s   tok/s         val loss  native val           val@5m          val@10m    Δ val vs baseline      epochs  speedup  peak mem    MFU\n"
            "standard (baseline)    6.4M  3    10.50  230.0k  3.4123 ± 0.0211      3.4001  3.9000 ± 0.0500  3.5000 ± 0.0300                    -           -    1.00x   6.1 GiB  41.0%\n"
            "worker,k4              6.5M  1    21.00  460.0k           3.5000      3.1000           3.8000                -  +0.0877 p=- (n < 3)  1.25 (>1!)    2.00x         -      -\n"
            "Δ vs baseline: mean final val loss difference, 95% CI and Welch's t-test p (matched tokens and matched training time in the JSON/CSV); \"n < 3\" and \"not significant\" (p >= 0.05) are flagged.\n"
            "Past one epoch (may rank overfitting): worker,k4: exp-7-3\n");
}

TEST(FormatCompareTest, Markdown) {
  auto text = FormatCompare(Fixed(), "markdown");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "| variant | params | n | steps/s | tok/s | val loss | native val | val@5m | val@10m | Δ val vs baseline | epochs | speedup | peak mem | MFU |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            "| standard (baseline) | 6.4M | 3 | 10.50 | 230.0k | 3.4123 ± 0.0211 | 3.4001 | 3.9000 ± 0.0500 | 3.5000 ± 0.0300 | - | - | 1.00x | 6.1 GiB | 41.0% |\n"
            "| worker,k4 | 6.5M | 1 | 21.00 | 460.0k | 3.5000 | 3.1000 | 3.8000 | - | +0.0877 p=- (n < 3) | 1.25 (>1!) | 2.00x | - | - |\n"
            "\n"
            "Δ vs baseline: mean final val loss difference, 95% CI and Welch's t-test p (matched tokens and matched training time in the JSON/CSV); \"n < 3\" and \"not significant\" (p >= 0.05) are flagged.\n"
            "Past one epoch (may rank overfitting): worker,k4: exp-7-3\n");
}

TEST(FormatCompareTest, CsvQuotesAndKeepsFullPrecision) {
  auto text = FormatCompare(Fixed(), "csv");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "variant,arch,params,n,steps_per_second,tokens_per_second,val_loss_mean,val_loss_std,val_loss_native_mean,train_loss_mean,val_loss_at_300s_mean,val_loss_at_300s_std,val_loss_at_600s_mean,val_loss_at_600s_std,speedup,peak_memory_bytes,mfu,layers_per_token,steps_mean,train_seconds_mean,final_at,final_diff,final_ci_low,final_ci_high,final_p_value,final_n,final_n_baseline,final_flag,matched_tokens_at,matched_tokens_diff,matched_tokens_ci_low,matched_tokens_ci_high,matched_tokens_p_value,matched_tokens_n,matched_tokens_n_baseline,matched_tokens_flag,matched_seconds_at,matched_seconds_diff,matched_seconds_ci_low,matched_seconds_ci_high,matched_seconds_p_value,matched_seconds_n,matched_seconds_n_baseline,matched_seconds_flag,epochs_max,trials_past_one_epoch\n"
            "standard,standard,6400000,3,10.5,230000,3.4123,0.0211,3.4001,3.3,3.9,0.05,3.5,0.03,1,6549825126,0.41,0,0,0,,,,,,,,,,,,,,,,,,,,,,,,,0,\n"
            "\"worker,k4\",worker,6500000,1,21,460000,3.5,0,3.1,0,3.8,0,,,2,0,0,0,0,0,0,0.0877,,,,1,3,n < 3,2000,-0.05,-0.08,-0.02,0.011,3,3,,600,-0.01,-0.05,0.03,0.52,3,3,not significant,1.25,exp-7-3\n");
}

TEST(FormatCompareTest, JsonRoundTripsWithoutCurves) {
  auto text = FormatCompare(Fixed(), "json");
  ASSERT_TRUE(text.ok());
  v1::CompareExperimentResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*text, &parsed).ok()) << *text;
  v1::CompareExperimentResponse expected = Fixed();
  expected.clear_curves();
  EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
  EXPECT_NE(text->find("\"val_loss_mean\""), std::string::npos);  // proto field names
}

// Fixed() plus two inference variants (one with no completed trial).
v1::CompareExperimentResponse WithInference() {
  v1::CompareExperimentResponse r = Fixed();
  EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(R"pb(
    inference {
      variant: "std-inf" arch: "standard" params: 3450000 n: 1 precision: "bf16"
      device: "cuda:0 NVIDIA H200" weights: "random (seed 1)"
      prefill { context: 256 seconds: 0.0012345 }
      prefill { context: 1024 seconds: 0.0031 }
      decode { batch: 1 seconds_per_step: 0.0005 tokens_per_second: 2000 bytes_per_step: 8e6
               bandwidth_bound_seconds: 1.6e-6 mode: "cuda_graph" }
      decode { batch: 32 seconds_per_step: 0.0008 tokens_per_second: 40000 mode: "cuda_graph" }
      kv_cache_bytes_per_token: 4096 peak_memory_bytes: 104857600
      prefill_speedup: 1 decode_speedup: 1
    }
    inference { variant: "hybrid-inf" arch: "hybrid" n: 0 }
  )pb", &r));
  return r;
}

TEST(FormatCompareTest, InferenceTableFollowsTheTrainingTable) {
  auto text = FormatCompare(WithInference(), "markdown");
  ASSERT_TRUE(text.ok());
  const size_t inference = text->find(
      "| inference variant | arch | params | n | precision | prefill 256 ms | prefill 1024 ms | "
      "decode b1 tok/s | decode b32 tok/s | b1 vs bound | b32 vs bound | KV B/token | peak mem | "
      "prefill speedup | decode speedup | decode |\n");
  ASSERT_NE(inference, std::string::npos) << *text;
  EXPECT_LT(text->find("| standard (baseline) |"), inference);
  EXPECT_NE(text->find("| std-inf | standard | 3.5M | 1 | bf16 | 1.234 | 3.100 | 2.0k | 40.0k | "
                       "312.5x | - | 4096 | 100.0 MiB | 1.00x | 1.00x | cuda_graph |\n"),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("| hybrid-inf | hybrid | 0 | 0 | - | - | - | - | - | - | - | - | - | - | "
                       "- | - |\n"),
            std::string::npos)
      << *text;
  auto table = FormatCompare(WithInference(), "table");
  ASSERT_TRUE(table.ok());
  EXPECT_NE(table->find("inference variant"), std::string::npos);
  // Without inference variants the output is the training table alone (unchanged).
  EXPECT_EQ(FormatCompare(Fixed(), "table")->find("inference"), std::string::npos);
}

TEST(FormatCompareTest, InferenceCsvIsASecondTable) {
  auto text = FormatCompare(WithInference(), "csv");
  ASSERT_TRUE(text.ok());
  const size_t second = text->find("\n\ninference_variant,arch,params,n,precision,device,weights,"
                                   "prefill_256_seconds,prefill_1024_seconds,"
                                   "decode_b1_seconds_per_step,decode_b1_tokens_per_second,");
  ASSERT_NE(second, std::string::npos) << *text;
  EXPECT_NE(text->find("std-inf,standard,3450000,1,bf16,cuda:0 NVIDIA H200,random (seed 1),"
                       "0.0012345,0.0031,0.0005,2000,8e+06,1.6e-06,cuda_graph,"),
            std::string::npos)
      << *text;
  v1::CompareExperimentResponse only = WithInference();
  only.clear_variants();
  EXPECT_EQ(FormatCompare(only, "csv")->rfind("inference_variant,", 0), 0u);
}

TEST(FormatCompareTest, UnknownFormatNamesTheFlag) {
  auto text = FormatCompare(Fixed(), "xml");
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("--format"), std::string::npos);
}

TEST(CurvesJsonTest, CarriesOnlyCurves) {
  const std::string json = CurvesJson(Fixed());
  EXPECT_NE(json.find("\"val_loss\":[4,3.5]"), std::string::npos) << json;
  EXPECT_EQ(json.find("variants"), std::string::npos);
}

TEST(FormatProgressLineTest, StepBudgetWithEta) {
  v1::Trial trial;
  trial.set_id("exp-7-0");
  trial.set_variant("standard");
  trial.set_state(v1::TRIAL_STATE_RUNNING);
  trial.mutable_spec()->mutable_budget()->set_steps(1000);
  TrialProgress p;
  p.step = 250;
  p.train_seconds = 60;
  p.latest = {{"train_loss", 3.2104}, {"tokens_per_second", 123456}};
  EXPECT_EQ(FormatProgressLine(trial, p, 8),
            "exp-7-0      standard         [##......]  25% step 250/1000 | loss 3.210 | val - |"
            " 123.5k tok/s | ETA 3m00s | running");
}

TEST(FormatProgressLineTest, SecondsBudgetCompleted) {
  v1::Trial trial;
  trial.set_id("exp-7-1");
  trial.set_variant("w");
  trial.set_state(v1::TRIAL_STATE_COMPLETED);
  trial.mutable_spec()->mutable_budget()->set_seconds(600);
  TrialProgress p;
  p.step = 900;
  p.train_seconds = 600;
  EXPECT_EQ(FormatProgressLine(trial, p, 4),
            "exp-7-1      w                [####] 100% step 900, 10m00s/10m00s | loss - | val - |"
            " - tok/s | ETA done | completed");
}

TEST(FormatExperimentTest, ShowsPendingReasonAndPlacement) {
  v1::Experiment e;
  e.set_id("exp-7");
  e.mutable_spec()->set_name("ci");
  e.set_state(v1::EXPERIMENT_STATE_RUNNING);
  v1::Trial* running = e.add_trials();
  running->set_id("exp-7-0");
  running->set_variant("standard");
  running->set_state(v1::TRIAL_STATE_RUNNING);
  running->set_attempt(1);
  auto* slice = running->mutable_placement()->add_slices();
  slice->set_worker_id("node-a");
  slice->add_devices(0);
  slice->add_devices(1);
  (*running->mutable_latest_metrics())["train_loss"] = 3.25;
  running->set_latest_step(40);
  v1::Trial* pending = e.add_trials();
  pending->set_id("exp-7-1");
  pending->set_variant("worker");
  pending->set_state(v1::TRIAL_STATE_PENDING);
  pending->set_status_message("needs 2 gpus, largest free gang is 1");
  const std::string text = FormatExperiment(e);
  EXPECT_NE(text.find("State:    running"), std::string::npos) << text;
  EXPECT_NE(text.find("node-a:0,1"), std::string::npos) << text;
  EXPECT_NE(text.find("3.2500"), std::string::npos) << text;
  EXPECT_NE(text.find("waiting: needs 2 gpus, largest free gang is 1"), std::string::npos) << text;
}

TEST(HumanTest, Units) {
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanCount(999), "999");
  EXPECT_EQ(HumanCount(1.25e9), "1.2B");
  EXPECT_EQ(HumanDuration(3725), "1h02m");
  EXPECT_EQ(HumanDuration(-1), "?");
}

}  // namespace
}  // namespace gauntlet::cli
