#include "server/trial_state.h"

#include "gtest/gtest.h"

namespace gauntlet {
namespace {

using v1::TrialState;

const absl::Time kNow = absl::FromUnixSeconds(1000);

TEST(TrialStateTest, TableMatchesContract) {
  const TrialState all[] = {v1::TRIAL_STATE_PENDING,   v1::TRIAL_STATE_SCHEDULED,
                            v1::TRIAL_STATE_RUNNING,   v1::TRIAL_STATE_COMPLETED,
                            v1::TRIAL_STATE_FAILED,    v1::TRIAL_STATE_CANCELED};
  const std::set<std::pair<TrialState, TrialState>> legal = {
      {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_SCHEDULED},
      {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_CANCELED},
      {v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_FAILED},
      {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_RUNNING},
      {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_PENDING},
      {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_FAILED},
      {v1::TRIAL_STATE_SCHEDULED, v1::TRIAL_STATE_CANCELED},
      {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_COMPLETED},
      {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_FAILED},
      {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_CANCELED},
      {v1::TRIAL_STATE_RUNNING, v1::TRIAL_STATE_PENDING},
  };
  for (TrialState from : all) {
    for (TrialState to : all) {
      EXPECT_EQ(IsLegalTransition(from, to), legal.count({from, to}) > 0)
          << TrialStateName(from) << " -> " << TrialStateName(to);
    }
  }
}

TEST(TrialStateTest, IllegalTransitionIsFailedPreconditionAndChangesNothing) {
  v1::Trial trial;
  trial.set_id("exp-1-0");
  trial.set_state(v1::TRIAL_STATE_COMPLETED);
  absl::Status status = ApplyTransition(trial, v1::TRIAL_STATE_RUNNING, kNow, "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "trial exp-1-0: illegal transition completed -> running");
  EXPECT_EQ(trial.state(), v1::TRIAL_STATE_COMPLETED);
  EXPECT_EQ(trial.transitions_size(), 0);
}

TEST(TrialStateTest, RestartIncrementsAttemptAndClearsPlacement) {
  v1::Trial trial;
  trial.set_state(v1::TRIAL_STATE_PENDING);
  trial.set_attempt(1);
  ASSERT_TRUE(ApplyTransition(trial, v1::TRIAL_STATE_SCHEDULED, kNow, "placed").ok());
  trial.mutable_placement()->set_master_addr("a");
  ASSERT_TRUE(ApplyTransition(trial, v1::TRIAL_STATE_RUNNING, kNow + absl::Seconds(1), "").ok());
  EXPECT_EQ(trial.started_unix_time(), 1001);
  ASSERT_TRUE(ApplyTransition(trial, v1::TRIAL_STATE_PENDING, kNow, "worker a lost").ok());
  EXPECT_EQ(trial.attempt(), 2);
  EXPECT_FALSE(trial.has_placement());
  EXPECT_EQ(trial.status_message(), "worker a lost");
  ASSERT_EQ(trial.transitions_size(), 3);
  EXPECT_EQ(trial.transitions(2).from(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(trial.transitions(2).to(), v1::TRIAL_STATE_PENDING);
  EXPECT_EQ(trial.transitions(2).reason(), "worker a lost");
}

v1::Experiment WithStates(std::initializer_list<TrialState> states) {
  v1::Experiment e;
  for (TrialState s : states) e.add_trials()->set_state(s);
  return e;
}

TEST(TrialStateTest, ExperimentStateIsDerived) {
  using E = v1::ExperimentState;
  struct Row {
    std::initializer_list<TrialState> trials;
    E want;
  };
  const Row rows[] = {
      {{v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_PENDING}, v1::EXPERIMENT_STATE_PENDING},
      {{v1::TRIAL_STATE_PENDING, v1::TRIAL_STATE_RUNNING}, v1::EXPERIMENT_STATE_RUNNING},
      {{v1::TRIAL_STATE_COMPLETED, v1::TRIAL_STATE_SCHEDULED}, v1::EXPERIMENT_STATE_RUNNING},
      {{v1::TRIAL_STATE_COMPLETED, v1::TRIAL_STATE_PENDING}, v1::EXPERIMENT_STATE_PENDING},
      {{v1::TRIAL_STATE_COMPLETED, v1::TRIAL_STATE_COMPLETED}, v1::EXPERIMENT_STATE_COMPLETED},
      {{v1::TRIAL_STATE_COMPLETED, v1::TRIAL_STATE_FAILED}, v1::EXPERIMENT_STATE_FAILED},
      {{v1::TRIAL_STATE_FAILED, v1::TRIAL_STATE_CANCELED}, v1::EXPERIMENT_STATE_CANCELED},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(DeriveExperimentState(WithStates(row.trials)), row.want)
        << ExperimentStateName(row.want);
  }
}

TEST(TrialStateTest, Names) {
  EXPECT_EQ(TrialStateName(v1::TRIAL_STATE_SCHEDULED), "scheduled");
  EXPECT_EQ(ExperimentStateName(v1::EXPERIMENT_STATE_CANCELED), "canceled");
}

TEST(TrialStateTest, HalveMicroBatchKeepsTheSequencesPerStepAndStopsAtTheSpecsFloor) {
  v1::TrialSpec spec;
  spec.mutable_train()->set_batch_size(16);
  spec.mutable_train()->set_grad_accum_steps(3);
  EXPECT_FALSE(HalveMicroBatch(spec));  // no oom_min_batch_size: out of memory is final
  spec.mutable_train()->set_oom_min_batch_size(4);
  ASSERT_TRUE(HalveMicroBatch(spec));
  EXPECT_EQ(spec.train().batch_size(), 8);
  EXPECT_EQ(spec.train().grad_accum_steps(), 6);
  ASSERT_TRUE(HalveMicroBatch(spec));
  EXPECT_EQ(spec.train().batch_size(), 4);
  EXPECT_EQ(spec.train().grad_accum_steps(), 12);
  EXPECT_FALSE(HalveMicroBatch(spec));  // 2 < 4
  EXPECT_EQ(spec.train().batch_size(), 4);
  spec.mutable_train()->set_batch_size(5);
  spec.mutable_train()->set_oom_min_batch_size(1);
  EXPECT_FALSE(HalveMicroBatch(spec));  // an odd batch cannot keep the same sequences per step
}

TEST(TrialStateTest, OnlyExitsARestartCanFixAreRetryable) {
  EXPECT_TRUE(RetryableExit(v1::TRAINER_EXIT_OTHER));
  EXPECT_TRUE(RetryableExit(v1::TRAINER_EXIT_DISTRIBUTED));
  EXPECT_TRUE(RetryableExit(128 + 9));
  EXPECT_FALSE(RetryableExit(v1::TRAINER_EXIT_OUT_OF_MEMORY));
  EXPECT_FALSE(RetryableExit(v1::TRAINER_EXIT_NON_FINITE));
  EXPECT_EQ(ExitName(5), "exit code 5 (TRAINER_EXIT_OUT_OF_MEMORY)");
  EXPECT_EQ(ExitName(137), "killed by signal 9");
}

}  // namespace
}  // namespace gauntlet
