#ifndef GAUNTLET_TRAINER_TRAIN_TRAIN_STEP_H_
#define GAUNTLET_TRAINER_TRAIN_TRAIN_STEP_H_

#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "trainer/dist/grad_bucketer.h"
#include "trainer/models/model.h"
#include "trainer/train/adamw.h"

namespace gauntlet {

struct TrainStepOptions {
  int64_t accum = 1;        // micro-batches per optimizer step
  bool bf16 = false;        // autocast the forward pass to bf16
  double grad_clip = 1.0;   // global-norm clip; 0 disables
  bool cuda_graphs = true;  // capture the step in a CUDA graph on GPUs
  // Eager steps before the capture: they create what a capture must find in place (optimizer
  // moments, cuBLAS workspaces, autograd's accumulators, models' cached tables) and are real
  // training steps.
  int eager_steps_before_capture = 3;
};

// Thrown out of a step when the gradient all-reduce fails (exit code kDistributed).
#if GAUNTLET_CUDA
// After a CUDA graph capture that failed midway: gives the device's default CUDA generator a fresh
// state with the same seed and offset. A failed capture never runs the generator's capture
// epilogue, so the generator would go on believing it is capturing and every later eager dropout
// would throw ("offset increment outside graph capture"). The failed capture consumed no
// randomness, so eager steps continue the exact random stream.
void ResetCudaGeneratorAfterFailedCapture(c10::DeviceIndex device);
#endif

class DistributedError : public std::runtime_error {
 public:
  explicit DistributedError(const absl::Status& status)
      : std::runtime_error(std::string(status.message())), status_(status) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

// One optimizer step: forward and backward over the micro-batches (the gradient all-reduce
// overlapping backward when a bucketer is given), global-norm clipping and fused AdamW, all
// without a host synchronisation.
//
// On CUDA the whole step is captured once in a CUDA graph and replayed: the micro-batches are
// copied into static device buffers and the learning rate into a device scalar before each replay,
// so a step costs one graph launch instead of hundreds of kernel launches. Dropout stays random
// per replay (the CUDA generator is registered with the graph). Where capture fails the step runs
// eagerly from then on and says why (description()). Eager steps run with CUDA's sync debug mode
// set to error, so a host synchronisation inside a step throws instead of silently costing time.
class TrainStep {
 public:
  // `model`, `optimizer` and `bucketer` (may be null) must outlive this object. `params` are the
  // model's parameters in registration order. `log` (may be null) gets one line when the mode
  // is decided.
  TrainStep(LanguageModelImpl* model, AdamW* optimizer, GradBucketer* bucketer,
            std::vector<torch::Tensor> params, torch::Device device, TrainStepOptions options,
            std::ostream* log);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One step on inputs/targets (accum, B, T) int64 on the host (pinned memory makes the copy
  // asynchronous) at learning rate `lr`. Returns once the work is queued, not done. Tensor errors
  // (c10::Error, out of memory) and DistributedError propagate as exceptions, as from any
  // LibTorch call; the caller maps them to exit codes.
  absl::Status Run(const torch::Tensor& inputs, const torch::Tensor& targets, double lr);

  // Device scalars of the last step, read them (a sync) only when reporting: the mean training
  // loss over the micro-batches (LM loss plus any auxiliary loss) and the gradient norm before
  // clipping.
  const torch::Tensor& loss() const { return loss_; }
  const torch::Tensor& lm_loss() const { return lm_loss_; }
  const torch::Tensor& grad_norm() const { return grad_norm_; }
  // The model's report scalars (ModelOutput::stats) of the last micro-batch.
  const std::map<std::string, torch::Tensor>& stats() const { return stats_; }

  bool graphed() const { return graph_ != nullptr; }
  // "CUDA graph", "eager" or "eager (CUDA graph capture failed: ...)".
  const std::string& description() const { return description_; }

 private:
  // The step's device work on device-resident inputs (accum, B, T).
  void Body(const torch::Tensor& inputs, const torch::Tensor& targets);
  void RunEager(const torch::Tensor& inputs, const torch::Tensor& targets, double lr);
  // Captures Body on the static buffers; false (graph left unset) when capture is impossible.
  bool Capture();

  LanguageModelImpl* model_;
  AdamW* optimizer_;
  GradBucketer* bucketer_;
  std::vector<torch::Tensor> params_;
  torch::Device device_;
  TrainStepOptions options_;
  std::ostream* log_;

  int64_t steps_run_ = 0;
  bool try_capture_;
  std::string description_;
  torch::Tensor loss_, lm_loss_, grad_norm_, lr_;
  std::map<std::string, torch::Tensor> stats_;
  torch::Tensor static_inputs_, static_targets_;
  struct Graph;
  std::unique_ptr<Graph> graph_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_TRAIN_STEP_H_
