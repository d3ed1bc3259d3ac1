#include "common/spec_yaml.h"

#include <algorithm>
#include <string>

#include "common/spec_validation.h"

#include "common/spec_defaults.h"
#include "common/trial_expansion.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

using google::protobuf::util::MessageDifferencer;

TEST(SpecYamlTest, TrialDefaultsAreAllApplied) {
  absl::StatusOr<v1::TrialSpec> spec =
      ParseTrialSpecYaml("data: {path: x}\nmodel: {arch: standard}\nbudget: {steps: 1}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->data().tokenizer(), "char");
  EXPECT_DOUBLE_EQ(spec->data().val_fraction(), 0.1);
  EXPECT_EQ(spec->model().size(), "seed");
  EXPECT_FALSE(spec->model().has_d_model());  // dims come from the named size at train time
  const v1::TrainSpec& t = spec->train();
  EXPECT_EQ(t.batch_size(), 16);
  EXPECT_EQ(t.grad_accum_steps(), 1);
  EXPECT_EQ(t.optimizer().name(), "adamw");
  EXPECT_DOUBLE_EQ(t.optimizer().lr(), 3e-4);
  EXPECT_DOUBLE_EQ(t.optimizer().beta1(), 0.9);
  EXPECT_DOUBLE_EQ(t.optimizer().beta2(), 0.999);
  EXPECT_DOUBLE_EQ(t.optimizer().eps(), 1e-8);
  EXPECT_DOUBLE_EQ(t.optimizer().weight_decay(), 0.01);
  EXPECT_EQ(t.schedule().kind(), "constant");
  EXPECT_EQ(t.schedule().warmup_steps(), 0);
  EXPECT_DOUBLE_EQ(t.schedule().min_lr_ratio(), 0.1);
  EXPECT_DOUBLE_EQ(t.grad_clip(), 1.0);
  EXPECT_EQ(t.precision(), "auto");
  EXPECT_EQ(t.log_every(), 10);
  EXPECT_DOUBLE_EQ(t.bucket_mib(), 25);
  const v1::EvalSpec& e = spec->eval();
  EXPECT_EQ(e.protocol(), "fair");
  EXPECT_EQ(e.every_steps(), 100);
  EXPECT_TRUE(e.has_every_seconds());
  EXPECT_EQ(e.every_seconds(), 0);
  EXPECT_TRUE(e.has_max_tokens());
  EXPECT_EQ(e.batch_size(), 16);
  EXPECT_EQ(e.seed_batches(), 20);
  EXPECT_EQ(e.seed_final_batches(), 50);
  EXPECT_EQ(spec->resources().gpus_per_trial(), 1);
  EXPECT_EQ(spec->resources().max_nodes(), 1);
  EXPECT_EQ(spec->resources().device(), "");
  EXPECT_TRUE(spec->checkpoint().has_every_steps());
  EXPECT_EQ(spec->checkpoint().keep_last(), 2);
}

TEST(SpecYamlTest, DefaultsNeverOverwriteExplicitZeros) {
  absl::StatusOr<v1::TrialSpec> spec = ParseTrialSpecYaml(
      "data: {path: x}\nmodel: {arch: standard}\nbudget: {steps: 1}\n"
      "train: {grad_clip: 0, optimizer: {weight_decay: 0}}\neval: {every_steps: 0}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->train().grad_clip(), 0);
  EXPECT_EQ(spec->train().optimizer().weight_decay(), 0);
  EXPECT_EQ(spec->eval().every_steps(), 0);
}

TEST(SpecYamlTest, ExperimentDefaultsApplyButBaseStaysAsWritten) {
  absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(R"(
name: e
data: {path: x}
budget: {steps: 1}
variants:
  - {name: first, model: {arch: standard}}
  - {name: second, model: {arch: worker}}
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->seeds_size(), 1);
  EXPECT_EQ(spec->seeds(0), 0);
  EXPECT_EQ(spec->max_restarts(), 1);
  EXPECT_EQ(spec->baseline(), "first");
  EXPECT_FALSE(spec->base().train().has_batch_size());  // a variant may still set it
  EXPECT_EQ(spec->variants(1).overrides().model().arch(), "worker");
}

TEST(SpecYamlTest, BriefExamplesProduceTheDocumentedMessages) {
  EXPECT_EQ(std::string(ParseExperimentSpecYaml("name: x\n"
                                                "data: {path: x}\n"
                                                "budget: {steps: 1}\n"
                                                "variants: [{name: a, model: {arch: standard}}]\n"
                                                "train:\n"
                                                "  optimizer:\n"
                                                "    lr: -1\n")
                            .status()
                            .message()),
            "line 7, column 5: train.optimizer.lr: must be > 0 (got -1)");
  EXPECT_EQ(
      std::string(ParseExperimentSpecYaml("name: x\nmodel:\n  dmodel: 1\n").status().message()),
      "line 3, column 3: model.dmodel: unknown field (did you mean d_model?)");
}

TEST(SpecYamlTest, EveryValidationErrorIsReportedAtOnceEachWithItsLineAndColumn) {
  absl::Status status = ParseExperimentSpecYaml(R"(name: exp-7
data: {path: x}
budget: {steps: 1}
model: {arch: standard}
train:
  grad_clip: -1
  optimizer: {lr: -1}
seeds: [1, 1]
variants:
  - name: a
  - name: a
    train: {grad_accum_steps: 0}
)")
                            .status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()),
            "line 1, column 1: name: must not look like an experiment id (exp-<n>), got \"exp-7\"\n"
            "line 11, column 5: variants[1].name: duplicate variant name \"a\" (also "
            "variants[0])\n"
            "line 8, column 12: seeds[1]: duplicate seed 1\n"
            "line 7, column 15: train.optimizer.lr: must be > 0 (got -1)\n"
            "line 6, column 3: train.grad_clip: must be >= 0 (got -1)\n"
            "line 12, column 13: variants[1].train.grad_accum_steps: must be >= 1 (got 0)");
}

TEST(SpecYamlTest, TheErrorListIsBoundedWhateverTheSpec) {
  std::string yaml = "name: x\ndata: {path: x}\nbudget: {steps: 1}\nmodel: {arch: standard}\n"
                     "seeds: [1]\nvariants:\n";
  for (int i = 0; i < 100; ++i) {
    yaml += "  - {name: v" + std::to_string(i) + ", model: {arch: bogus" + std::to_string(i) + "}}\n";
  }
  absl::Status status = ParseExperimentSpecYaml(yaml).status();
  const std::string message(status.message());
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), kMaxSpecErrors);
  EXPECT_NE(message.find("\n... and more errors (the first 20 are listed)"), std::string::npos)
      << message;
}

TEST(SpecYamlTest, BaseErrorInsideAVariantsSectionNamesTheVariant) {
  // The base alone is valid (8 heads divide the seed size's 256); variant b breaks it.
  absl::Status status = ParseExperimentSpecYaml(R"(name: x
data: {path: x}
budget: {steps: 1}
model:
  arch: standard
  n_heads: 8
variants:
  - name: a
  - name: b
    model: {d_model: 36}
)")
                            .status();
  // d_model 36 / 8 heads does not divide: the base line is blamed, the variant named.
  EXPECT_EQ(std::string(status.message()),
            "line 6, column 3: model.n_heads: 8 does not divide model.d_model 36 (variant \"b\")");
}

TEST(SpecYamlTest, ResolvedTrialYamlRoundTripsThroughTheTrainerParser) {
  absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(R"(
name: rt
data: {path: "tinyshakespeare/input.txt", include_suffixes: [.txt]}
model: {size: tiny}
budget: {seconds: 12.5}
variants:
  - {name: w, model: {arch: worker, worker: {interval: 3}}, train: {optimizer: {lr: 0.0007}}}
  - {name: h, model: {arch: hybrid, hybrid: {layer_types: [attn, mlp]}}}
seeds: [11]
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::vector<ExpandedTrial>> trials = ExpandTrials(*spec);
  ASSERT_TRUE(trials.ok());
  ASSERT_EQ(trials->size(), 2u);
  for (ExpandedTrial& trial : *trials) {
    trial.spec.set_run_dir("/runs/rt/" + trial.variant);  // what the worker adds
    const std::string yaml = TrialSpecToYaml(trial.spec);
    absl::StatusOr<v1::TrialSpec> back = ParseTrialSpecYaml(yaml);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
    EXPECT_TRUE(MessageDifferencer::Equals(trial.spec, *back)) << yaml;
  }
}

TEST(SpecYamlTest, ExperimentOnlyKeysAreRejectedInTrialSpecs) {
  EXPECT_EQ(std::string(ParseTrialSpecYaml("variants: []\n").status().message()),
            "line 1, column 1: variants: unknown field (expected one of: data, model, train, "
            "budget, eval, resources, checkpoint, seed, run_dir, kind, inference, stages)");
}

TEST(SpecYamlTest, InferenceTrialsGetTheirDefaultsAndNeedNoBudget) {
  absl::StatusOr<v1::ExperimentSpec> spec = ParseExperimentSpecYaml(R"(name: inf
data: {path: x}
model: {size: tiny}
variants:
  - {name: std, kind: inference, model: {arch: standard}}
  - {name: hyb, kind: inference, model: {arch: hybrid}, inference: {decode_batches: [4]}}
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::vector<ExpandedTrial>> trials = ExpandTrials(*spec);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 2u);
  const v1::InferenceSpec& std_inference = (*trials)[0].spec.inference();
  EXPECT_EQ(std::vector<int>(std_inference.prefill_contexts().begin(),
                             std_inference.prefill_contexts().end()),
            (std::vector<int>{256, 1024, 4096}));
  EXPECT_EQ(std::vector<int>(std_inference.decode_batches().begin(),
                             std_inference.decode_batches().end()),
            (std::vector<int>{1, 32}));
  EXPECT_EQ(std_inference.decode_context(), 256);
  EXPECT_EQ(std_inference.decode_steps(), 64);
  EXPECT_TRUE(std_inference.cuda_graphs());
  EXPECT_EQ((*trials)[1].spec.inference().decode_batches_size(), 1);
  // A training trial gets no inference section.
  absl::StatusOr<v1::TrialSpec> train =
      ParseTrialSpecYaml("data: {path: x}\nmodel: {arch: standard}\nbudget: {steps: 1}\n");
  ASSERT_TRUE(train.ok());
  EXPECT_FALSE(train->has_inference());
}

TEST(SpecYamlTest, InferenceErrorsNameTheFieldWithLineAndColumn) {
  absl::Status status = ParseExperimentSpecYaml(R"(name: inf
data: {path: x}
budget: {steps: 1}
model: {arch: standard, size: tiny}
variants:
  - name: train
  - name: inf
    kind: inference
    inference:
      prefill_contexts: [256, 0, 256]
      decode_batches: [5000]
      repeats: 0
      checkpoint_variant: nope
  - {name: odd, kind: serve}
  - {name: two, kind: inference, inference: {checkpoint_variant: inf}}
  - {name: wide, kind: inference, resources: {gpus_per_trial: 2, max_nodes: 1}}
)")
                            .status();
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()),
            "line 13, column 7: variants[1].inference.checkpoint_variant: must name a variant "
            "(got \"nope\")\n"
            "line 15, column 46: variants[3].inference.checkpoint_variant: must name a training "
            "variant (\"inf\" is an inference variant)\n"
            "line 10, column 31: variants[1].inference.prefill_contexts[1]: must be >= 1 (got 0)\n"
            "line 10, column 34: variants[1].inference.prefill_contexts[2]: duplicate context 256\n"
            "line 11, column 24: variants[1].inference.decode_batches[0]: must be <= 4096 (got "
            "5000)\n"
            "line 12, column 7: variants[1].inference.repeats: must be >= 1 (got 0)\n"
            "line 14, column 17: variants[2].kind: must be one of train, inference (got "
            "\"serve\")\n"
            "line 16, column 47: variants[4].resources.gpus_per_trial: must be 1 for kind: "
            "inference (one device; got 2)");
}

}  // namespace
}  // namespace gauntlet
