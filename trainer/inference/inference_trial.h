#ifndef GAUNTLET_TRAINER_INFERENCE_INFERENCE_TRIAL_H_
#define GAUNTLET_TRAINER_INFERENCE_INFERENCE_TRIAL_H_

// A trial of kind "inference" (v1::InferenceSpec): the model of the spec, with a trained trial's
// last checkpoint or random weights, timed through its KV cache (inference_bench.h). The result
// goes into the summary (TrainerSummary.inference), the one record the worker forwards and the
// coordinator stores, exports and compares.

#include <ostream>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "gauntlet/v1/spec.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "common/clock.h"
#include "trainer/train/event_writer.h"

namespace gauntlet {

// Runs `spec` (kind "inference", defaults applied) on `device`. `log` and `events` may be null.
// Errors carry their ExitCode (trainer/train/exit_code.h): bad data, a bad spec, or a checkpoint
// that does not match the model.
absl::StatusOr<v1::TrainerSummary> RunInferenceTrial(const v1::TrialSpec& spec,
                                                     const torch::Device& device, const Clock& clock,
                                                     std::ostream* log, EventWriter* events);

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_INFERENCE_INFERENCE_TRIAL_H_
