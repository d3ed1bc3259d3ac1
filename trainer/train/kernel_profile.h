#ifndef GAUNTLET_TRAINER_TRAIN_KERNEL_PROFILE_H_
#define GAUNTLET_TRAINER_TRAIN_KERNEL_PROFILE_H_

#include <cstdint>
#include <memory>
#include <string>

namespace gauntlet {

// Where a stretch of training steps spends device time: PyTorch's Kineto profiler (CUPTI on
// GPUs, which also sees the kernels a CUDA graph replays) collects every device activity between
// Start() and Finish(), and Finish() sums them per kernel name. On CPU it summarises operator
// time instead. For attribution runs (`trainer --profile_steps=N`), not for production: the
// profiler itself costs time.
class KernelProfile {
 public:
  // Starts collecting. Only one profile may run at a time in a process.
  static std::unique_ptr<KernelProfile> Start();
  ~KernelProfile();
  KernelProfile(const KernelProfile&) = delete;
  KernelProfile& operator=(const KernelProfile&) = delete;

  // Stops collecting and returns a markdown table of the `top` most expensive kernels per step
  // over `steps` steps that took `wall_seconds`, with the device's busy share of that time. The
  // caller synchronises the device first so every activity has ended.
  std::string Finish(int64_t steps, double wall_seconds, int top = 30);

 private:
  KernelProfile() = default;
  bool active_ = false;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_KERNEL_PROFILE_H_
