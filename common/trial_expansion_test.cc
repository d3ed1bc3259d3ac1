#include "common/trial_expansion.h"

#include <string>
#include <vector>

#include "common/spec_yaml.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

constexpr char kSpec[] = R"(
name: expand
data: {path: corpus.txt, include_suffixes: [.c]}
model: {arch: standard, size: tiny}
train: {batch_size: 8, optimizer: {lr: 1e-3}}
budget: {steps: 50}
variants:
  - name: std
  - name: wk
    model: {arch: worker, worker: {interval: 2}}
    train: {batch_size: 4}
    data: {include_suffixes: [.h, .txt]}
seeds: [5, 1]
sweep:
  train.optimizer.lr: [1e-4, 2e-4]
  model.n_layers: [1, 3]
)";

v1::ExperimentSpec ParseOrDie(const char* yaml) {
  absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(yaml);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.value_or(v1::ExperimentSpec());
}

TEST(TrialExpansionTest, OrderIsVariantThenGridPointThenSeed) {
  absl::StatusOr<std::vector<ExpandedTrial>> trials = ExpandTrials(ParseOrDie(kSpec));
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u * 4u * 2u);
  std::vector<std::string> order;
  for (const ExpandedTrial& t : *trials) {
    order.push_back(t.variant + "/" + t.grid_point.at("train.optimizer.lr") + "/" +
                    t.grid_point.at("model.n_layers") + "/" + std::to_string(t.seed));
  }
  EXPECT_EQ(order[0], "std/1e-4/1/5");
  EXPECT_EQ(order[1], "std/1e-4/1/1");  // seeds keep their spec order
  EXPECT_EQ(order[2], "std/1e-4/3/5");  // last axis varies fastest
  EXPECT_EQ(order[4], "std/2e-4/1/5");
  EXPECT_EQ(order[8], "wk/1e-4/1/5");
  EXPECT_EQ(order[15], "wk/2e-4/3/1");
  // Deterministic: expanding again gives the same sequence.
  absl::StatusOr<std::vector<ExpandedTrial>> again = ExpandTrials(ParseOrDie(kSpec));
  ASSERT_TRUE(again.ok());
  for (size_t i = 0; i < trials->size(); ++i) {
    EXPECT_EQ((*again)[i].spec.SerializeAsString(), (*trials)[i].spec.SerializeAsString());
  }
}

TEST(TrialExpansionTest, SpecIsBaseThenOverridesThenGridThenSeedThenDefaults) {
  absl::StatusOr<std::vector<ExpandedTrial>> trials = ExpandTrials(ParseOrDie(kSpec));
  ASSERT_TRUE(trials.ok());
  const v1::TrialSpec& std_trial = (*trials)[1].spec;  // std, lr 1e-4, 1 layer, seed 1
  EXPECT_EQ(std_trial.model().arch(), "standard");
  EXPECT_EQ(std_trial.model().size(), "tiny");
  EXPECT_EQ(std_trial.model().n_layers(), 1);
  EXPECT_DOUBLE_EQ(std_trial.train().optimizer().lr(), 1e-4);  // grid beats the base's 1e-3
  EXPECT_EQ(std_trial.train().batch_size(), 8);
  EXPECT_EQ(std_trial.eval().batch_size(), 8);  // derived default follows train.batch_size
  EXPECT_EQ(std_trial.seed(), 1);
  EXPECT_EQ(std_trial.data().include_suffixes_size(), 1);
  EXPECT_EQ(std_trial.data().tokenizer(), "char");  // default
  EXPECT_TRUE(std_trial.run_dir().empty());

  const v1::TrialSpec& wk = (*trials)[15].spec;  // wk, lr 2e-4, 3 layers, seed 1
  EXPECT_EQ(wk.model().arch(), "worker");
  EXPECT_EQ(wk.model().size(), "tiny");  // inherited from the base
  EXPECT_EQ(wk.model().worker().interval(), 2);
  EXPECT_EQ(wk.model().n_layers(), 3);
  EXPECT_EQ(wk.train().batch_size(), 4);
  EXPECT_EQ(wk.eval().batch_size(), 4);
  EXPECT_DOUBLE_EQ(wk.train().optimizer().lr(), 2e-4);
  ASSERT_EQ(wk.data().include_suffixes_size(), 2);  // the variant's list replaces the base's
  EXPECT_EQ(wk.data().include_suffixes(0), ".h");
  EXPECT_EQ(wk.data().path(), "corpus.txt");
}

TEST(TrialExpansionTest, NoSweepMeansOneGridPoint) {
  v1::ExperimentSpec spec = ParseOrDie(R"(
name: plain
data: {path: x}
model: {arch: standard}
budget: {steps: 1}
variants: [{name: a}, {name: b}]
)");
  EXPECT_EQ(SweepGrid(spec).size(), 1u);
  absl::StatusOr<std::vector<ExpandedTrial>> trials = ExpandTrials(spec);
  ASSERT_TRUE(trials.ok());
  ASSERT_EQ(trials->size(), 2u);  // default seeds [0]
  EXPECT_EQ((*trials)[1].variant, "b");
  EXPECT_EQ((*trials)[1].seed, 0);
  EXPECT_TRUE((*trials)[1].grid_point.empty());
}

TEST(TrialExpansionTest, ResolveRejectsBadSweepValuesInUnvalidatedSpecs) {
  v1::ExperimentSpec spec;
  spec.add_variants()->set_name("a");
  v1::SweepAxis* axis = spec.add_sweep();
  axis->set_path("train.batch_size");
  axis->add_values("big");
  absl::StatusOr<v1::TrialSpec> trial = ResolveTrialSpec(spec, 0, {0}, 0);
  EXPECT_EQ(trial.status().message(),
            "sweep.train.batch_size[0]: expected an integer (got \"big\")");
  EXPECT_FALSE(ResolveTrialSpec(spec, 1, {0}, 0).ok());
  EXPECT_FALSE(ResolveTrialSpec(spec, 0, {1}, 0).ok());
}

}  // namespace
}  // namespace gauntlet
