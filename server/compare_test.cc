#include "server/compare.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

v1::MetricPoint Val(double seconds, double loss, int64_t tokens = 0) {
  v1::MetricPoint p;
  p.set_name("val_loss");
  p.set_train_seconds(seconds);
  p.set_value(loss);
  p.set_tokens(tokens);
  return p;
}

TrialResult Completed(const std::string& id, const std::string& variant, int64_t seed,
                      double val_loss, double tokens_per_second, double train_seconds) {
  TrialResult r;
  r.trial.set_id(id);
  r.trial.set_variant(variant);
  r.trial.set_seed(seed);
  r.trial.set_state(v1::TRIAL_STATE_COMPLETED);
  r.trial.mutable_spec()->mutable_model()->set_arch(variant == "std" ? "standard" : "worker");
  v1::TrainerSummary s;
  s.set_params(1000);
  s.set_final_val_loss(val_loss);
  s.set_tokens_per_second(tokens_per_second);
  s.set_train_seconds(train_seconds);
  r.summary = s;
  // A straight line from 4.0 at t=0 to the final loss at the end.
  r.val_curve = {Val(train_seconds, val_loss, 200), Val(0, 4.0, 0)};
  return r;
}

v1::Experiment TwoVariants() {
  v1::Experiment e;
  e.set_id("exp-1");
  e.mutable_spec()->add_variants()->set_name("std");
  e.mutable_spec()->add_variants()->set_name("wk");
  e.mutable_spec()->set_baseline("std");
  return e;
}

TEST(CompareTest, MeansSampleStdSpeedupAndWallclock) {
  std::vector<TrialResult> results = {
      Completed("t0", "std", 1, 2.0, 100, 10), Completed("t1", "std", 2, 3.0, 100, 10),
      Completed("t2", "wk", 1, 1.5, 250, 20), Completed("t3", "wk", 2, 1.5, 150, 20)};
  TrialResult running;
  running.trial.set_id("t4");
  running.trial.set_variant("wk");
  running.trial.set_state(v1::TRIAL_STATE_RUNNING);
  running.val_curve = {Val(1, 3.9)};
  results.push_back(running);

  auto response = CompareTrials(TwoVariants(), results, {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->baseline(), "std");
  ASSERT_EQ(response->variants_size(), 2);
  const v1::VariantSummary& std_v = response->variants(0);
  const v1::VariantSummary& wk = response->variants(1);
  EXPECT_EQ(std_v.variant(), "std");
  EXPECT_EQ(std_v.arch(), "standard");
  EXPECT_EQ(std_v.n(), 2);
  EXPECT_EQ(std_v.params(), 1000);
  EXPECT_DOUBLE_EQ(std_v.val_loss_mean(), 2.5);
  EXPECT_DOUBLE_EQ(std_v.val_loss_std(), std::sqrt(0.5));  // sample std of {2, 3}
  EXPECT_DOUBLE_EQ(std_v.speedup(), 1.0);
  EXPECT_EQ(wk.n(), 2);  // the running trial is not counted
  EXPECT_DOUBLE_EQ(wk.val_loss_std(), 0.0);
  EXPECT_DOUBLE_EQ(wk.speedup(), 2.0);
  // Default points: quarters of the shortest trial (10 s).
  ASSERT_EQ(wk.val_loss_at_size(), 4);
  EXPECT_DOUBLE_EQ(wk.val_loss_at(1).seconds(), 5.0);
  // wk at 5 s of 20: 4.0 + 0.25 * (1.5 - 4.0).
  EXPECT_DOUBLE_EQ(wk.val_loss_at(1).mean(), 3.375);
  EXPECT_EQ(wk.val_loss_at(1).n(), 2);
  EXPECT_DOUBLE_EQ(std_v.val_loss_at(3).mean(), 2.5);
  // Curves for every trial with points, sorted by time.
  ASSERT_EQ(response->curves_size(), 5);
  EXPECT_EQ(response->curves(0).train_seconds(0), 0);
  EXPECT_EQ(response->curves(0).val_loss(1), 2.0);
}

TEST(CompareTest, ExplicitPointsOutsideCurveAreNotCounted) {
  v1::CompareExperimentRequest request;
  request.add_wallclock_points(15);
  auto response = CompareTrials(
      TwoVariants(),
      {Completed("t0", "std", 1, 2.0, 100, 10), Completed("t2", "wk", 1, 1.5, 250, 20)}, request);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->variants(0).val_loss_at(0).n(), 0);
  EXPECT_EQ(response->variants(1).val_loss_at(0).n(), 1);
}

TEST(CompareTest, BadInputsNameTheField) {
  v1::CompareExperimentRequest request;
  request.set_baseline("nope");
  EXPECT_EQ(CompareTrials(TwoVariants(), {}, request).status().message(),
            "baseline: unknown variant 'nope' in experiment exp-1");
  request.clear_baseline();
  request.add_wallclock_points(1);
  request.add_wallclock_points(-2);
  auto bad = CompareTrials(TwoVariants(), {}, request);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("wallclock_points[1]"), std::string::npos);
}

TEST(CompareTest, SweepPointsFormSeparateGroups) {
  TrialResult a = Completed("t0", "std", 1, 2.0, 100, 10);
  (*a.trial.mutable_grid_point())["train.optimizer.lr"] = "0.001";
  TrialResult b = Completed("t1", "std", 1, 3.0, 50, 10);
  (*b.trial.mutable_grid_point())["train.optimizer.lr"] = "0.01";
  auto response = CompareTrials(TwoVariants(), {a, b}, {});
  ASSERT_TRUE(response.ok());
  ASSERT_EQ(response->variants_size(), 2);
  EXPECT_EQ(response->variants(0).variant(), "std[train.optimizer.lr=0.001]");
  EXPECT_EQ(response->variants(1).variant(), "std[train.optimizer.lr=0.01]");
  // Each grid point is its own baseline.
  EXPECT_DOUBLE_EQ(response->variants(1).speedup(), 1.0);
}

TEST(CompareTest, Interpolation) {
  std::vector<v1::MetricPoint> curve = {Val(2, 3.0), Val(4, 2.0)};
  EXPECT_FALSE(InterpolateAt(curve, 1).has_value());
  EXPECT_DOUBLE_EQ(*InterpolateAt(curve, 3), 2.5);
  EXPECT_DOUBLE_EQ(*InterpolateAt(curve, 4), 2.0);
  EXPECT_FALSE(InterpolateAt(curve, 4.5).has_value());
  EXPECT_FALSE(InterpolateAt({}, 1).has_value());
}

TEST(CompareTest, SignificanceFinalMatchedTokensAndSecondsWithFlags) {
  // std: final losses 3.00, 3.02, 2.98 at 10 s and 200 tokens; wk: 2.50, 2.52, 2.48 at 20 s and
  // 200 tokens. Curves are straight lines from 4.0 at (0 s, 0 tokens).
  std::vector<TrialResult> results;
  int seed = 0;
  for (double loss : {3.00, 3.02, 2.98}) {
    results.push_back(Completed(absl::StrCat("s", seed), "std", seed, loss, 100, 10));
    ++seed;
  }
  for (double loss : {2.50, 2.52, 2.48}) {
    results.push_back(Completed(absl::StrCat("w", seed), "wk", seed, loss, 100, 20));
    ++seed;
  }
  results[3].summary->set_epochs(1.5);  // one trial went past an epoch
  results[4].summary->set_epochs(0.4);
  auto response = CompareTrials(TwoVariants(), results, {});
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->variants_size(), 2);
  EXPECT_EQ(response->variants(0).vs_baseline_size(), 0);  // the baseline itself
  const v1::VariantSummary& wk = response->variants(1);
  EXPECT_DOUBLE_EQ(wk.epochs_max(), 1.5);
  ASSERT_EQ(wk.trials_past_one_epoch_size(), 1);
  EXPECT_EQ(wk.trials_past_one_epoch(0), "w3");
  ASSERT_EQ(wk.vs_baseline_size(), 3);

  const v1::SignificanceTest& final_test = wk.vs_baseline(0);
  EXPECT_EQ(final_test.basis(), "final");
  EXPECT_EQ(final_test.n(), 3);
  EXPECT_NEAR(final_test.diff(), -0.5, 1e-12);
  // Both samples have std 0.02: t = -0.5 / sqrt(2 * 0.0004 / 3), df = 4.
  EXPECT_NEAR(final_test.t(), -0.5 / std::sqrt(2 * 0.0004 / 3), 1e-9);
  EXPECT_NEAR(final_test.df(), 4, 1e-9);
  EXPECT_LT(final_test.p_value(), 1e-4);
  EXPECT_LT(final_test.ci_high(), 0);
  EXPECT_EQ(final_test.flag(), "");

  // Matched tokens: both reach 200 tokens, so the final values again.
  const v1::SignificanceTest& tokens = wk.vs_baseline(1);
  EXPECT_EQ(tokens.basis(), "matched_tokens");
  EXPECT_DOUBLE_EQ(tokens.at(), 200);
  EXPECT_NEAR(tokens.diff(), -0.5, 1e-12);
  // Matched time: 10 s, where wk is halfway down its line: 4 - (4 - 2.5) / 2 = 3.25 vs 3.00.
  const v1::SignificanceTest& seconds = wk.vs_baseline(2);
  EXPECT_EQ(seconds.basis(), "matched_seconds");
  EXPECT_DOUBLE_EQ(seconds.at(), 10);
  EXPECT_NEAR(seconds.diff(), 0.25, 1e-12);
  EXPECT_LT(seconds.p_value(), 0.05);

  // Two seeds a side: flagged n < 3 whatever p is; identical distributions: not significant.
  results.erase(results.begin() + 5);
  response = CompareTrials(TwoVariants(), results, {});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->variants(1).vs_baseline(0).flag(), "n < 3");
  results = {Completed("a", "std", 1, 3.0, 1, 10), Completed("b", "std", 2, 3.1, 1, 10),
             Completed("c", "std", 3, 2.9, 1, 10), Completed("d", "wk", 1, 3.05, 1, 10),
             Completed("e", "wk", 2, 2.95, 1, 10), Completed("f", "wk", 3, 3.0, 1, 10)};
  response = CompareTrials(TwoVariants(), results, {});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->variants(1).vs_baseline(0).flag(), "not significant");
  EXPECT_GT(response->variants(1).vs_baseline(0).p_value(), 0.5);
}

}  // namespace
}  // namespace gauntlet

namespace gauntlet {
namespace {

TEST(CompareTest, SubmodelsGetTheirOwnRowsAfterTheVariants) {
  std::vector<TrialResult> results = {Completed("t1", "std", 1, 2.0, 100, 10),
                                      Completed("t2", "wk", 1, 2.5, 200, 10),
                                      Completed("t3", "wk", 2, 2.7, 200, 10)};
  // The "wk" trials scored two submodels (as a MatFormer reports its granularities); t3's
  // second one is missing, so that row counts one trial.
  for (auto [index, losses] :
       {std::pair{1, std::vector<double>{3.0, 2.6}}, std::pair{2, std::vector<double>{3.4}}}) {
    for (size_t k = 0; k < losses.size(); ++k) {
      v1::SubmodelEval* e = results[index].summary->add_submodels();
      e->set_name(k == 0 ? "ffn=0.25" : "ffn=1");
      e->set_val_loss(losses[k]);
      e->set_val_loss_native(losses[k] + 0.1);
    }
  }
  absl::StatusOr<v1::CompareExperimentResponse> r =
      CompareTrials(TwoVariants(), results, v1::CompareExperimentRequest());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->variants_size(), 4);
  EXPECT_EQ(r->variants(0).variant(), "std");
  EXPECT_EQ(r->variants(1).variant(), "wk");
  EXPECT_TRUE(r->variants(1).submodel().empty());
  const v1::VariantSummary& quarter = r->variants(2);
  EXPECT_EQ(quarter.variant(), "wk/ffn=0.25");
  EXPECT_EQ(quarter.submodel(), "ffn=0.25");
  EXPECT_EQ(quarter.arch(), "worker");
  EXPECT_EQ(quarter.params(), 1000);
  EXPECT_EQ(quarter.n(), 2);
  EXPECT_DOUBLE_EQ(quarter.val_loss_mean(), 3.2);
  EXPECT_NEAR(quarter.val_loss_std(), std::sqrt(0.08), 1e-12);
  EXPECT_DOUBLE_EQ(quarter.val_loss_native_mean(), 3.3);
  EXPECT_EQ(quarter.tokens_per_second(), 0);  // not timed on its own
  const v1::VariantSummary& full = r->variants(3);
  EXPECT_EQ(full.variant(), "wk/ffn=1");
  EXPECT_EQ(full.n(), 1);
  EXPECT_DOUBLE_EQ(full.val_loss_mean(), 2.6);
}

// An inference trial's summary: prefill at 256 and 1024, decode at batch 1 and 32.
TrialResult Inference(const std::string& id, const std::string& variant, int64_t seed,
                      double prefill_1024, double decode_b1, v1::TrialState state) {
  TrialResult r;
  r.trial.set_id(id);
  r.trial.set_variant(variant);
  r.trial.set_seed(seed);
  r.trial.set_state(state);
  r.trial.mutable_spec()->set_kind("inference");
  r.trial.mutable_spec()->mutable_model()->set_arch(variant);
  v1::TrainerSummary s;
  s.set_params(500);
  v1::InferenceResult& in = *s.mutable_inference();
  in.set_precision("bf16");
  in.set_weights("random (seed 1)");
  v1::PrefillLatency* p = in.add_prefill();
  p->set_context(256);
  p->set_seconds(prefill_1024 / 4);
  p = in.add_prefill();
  p->set_context(1024);
  p->set_seconds(prefill_1024);
  for (int batch : {1, 32}) {
    v1::DecodeThroughput* d = in.add_decode();
    d->set_batch(batch);
    d->set_tokens_per_second(decode_b1 * batch);
    d->set_seconds_per_step(batch / d->tokens_per_second());
    d->set_bandwidth_bound_seconds(d->seconds_per_step() / 2);
    d->set_mode("cuda_graph");
  }
  in.set_kv_cache_bytes_per_token(variant == "hybrid" ? 2048 : 4096);
  r.summary = s;
  return r;
}

TEST(CompareTest, InferenceTrialsGetTheirOwnTableBesideTheTrainingOne) {
  v1::Experiment e = TwoVariants();
  e.mutable_spec()->add_variants()->set_name("standard");
  e.mutable_spec()->add_variants()->set_name("hybrid");
  std::vector<TrialResult> results = {
      Completed("t0", "std", 1, 2.0, 100, 10),
      Inference("t1", "standard", 1, 0.004, 1000, v1::TRIAL_STATE_COMPLETED),
      Inference("t2", "standard", 2, 0.006, 3000, v1::TRIAL_STATE_COMPLETED),
      Inference("t3", "hybrid", 1, 0.0025, 3000, v1::TRIAL_STATE_COMPLETED),
      Inference("t4", "hybrid", 2, 1.0, 1, v1::TRIAL_STATE_FAILED)};  // not counted
  auto response = CompareTrials(e, results, {});
  ASSERT_TRUE(response.ok()) << response.status();
  // Inference trials stay out of the training rows.
  ASSERT_EQ(response->variants_size(), 1);
  EXPECT_EQ(response->variants(0).variant(), "std");
  ASSERT_EQ(response->inference_size(), 2);
  const v1::InferenceVariantSummary& standard = response->inference(0);
  const v1::InferenceVariantSummary& hybrid = response->inference(1);
  EXPECT_EQ(standard.variant(), "standard");
  EXPECT_EQ(standard.n(), 2);
  EXPECT_EQ(standard.precision(), "bf16");
  ASSERT_EQ(standard.prefill_size(), 2);
  EXPECT_DOUBLE_EQ(standard.prefill(1).seconds(), 0.005);  // mean of 4 and 6 ms
  ASSERT_EQ(standard.decode_size(), 2);
  EXPECT_DOUBLE_EQ(standard.decode(0).tokens_per_second(), 2000);
  EXPECT_EQ(standard.decode(1).batch(), 32);
  EXPECT_EQ(standard.decode(1).mode(), "cuda_graph");
  EXPECT_DOUBLE_EQ(standard.kv_cache_bytes_per_token(), 4096);
  // The baseline (std) trains, so the first inference variant is the inference table's.
  EXPECT_DOUBLE_EQ(standard.prefill_speedup(), 1.0);
  EXPECT_DOUBLE_EQ(standard.decode_speedup(), 1.0);
  EXPECT_EQ(hybrid.n(), 1);
  EXPECT_DOUBLE_EQ(hybrid.prefill_speedup(), 0.005 / 0.0025);  // at context 1024
  EXPECT_DOUBLE_EQ(hybrid.decode_speedup(), 3000.0 / 2000);    // at batch 1

  // Naming an inference variant as the baseline makes it the inference table's baseline.
  v1::CompareExperimentRequest request;
  request.set_baseline("hybrid");
  response = CompareTrials(e, results, request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_DOUBLE_EQ(response->inference(0).decode_speedup(), 2000.0 / 3000);
  EXPECT_DOUBLE_EQ(response->inference(1).decode_speedup(), 1.0);
}

}  // namespace
}  // namespace gauntlet
