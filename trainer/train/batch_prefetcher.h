#ifndef GAUNTLET_TRAINER_TRAIN_BATCH_PREFETCHER_H_
#define GAUNTLET_TRAINER_TRAIN_BATCH_PREFETCHER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "trainer/data/batch_sampler.h"

namespace gauntlet {

// The batches of one optimizer step: inputs/targets (accum, B, T) int64 on the host, in pinned
// memory when the trainer runs on CUDA so the copy to the device is asynchronous.
struct StepBatch {
  int slot = -1;
  torch::Tensor inputs;
  torch::Tensor targets;
  // The sampler's state once this step's batches were drawn: what a checkpoint taken after this
  // step must hold, however far the background thread has read ahead.
  BatchSampler::State sampler_state;
};

// Draws each step's micro-batches on a background thread, `depth` steps ahead of the training
// loop, into a ring of reusable (pinned) host buffers. A buffer handed out by Next() is reused
// only after Release(): on CUDA, Release records an event on the current stream after the copies
// that read it, and the background thread waits for that event, never the training thread.
class BatchPrefetcher {
 public:
  // Takes over `sampler` (already restored from a checkpoint). `pinned`: page-locked buffers.
  BatchPrefetcher(BatchSampler sampler, int64_t accum, bool pinned, int depth = 3);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next step's batches; blocks only when the background thread is behind. Throws
  // std::runtime_error when drawing a batch failed.
  StepBatch Next();
  // Returns a buffer once every read of it is queued on the current stream.
  void Release(const StepBatch& batch);

 private:
  struct Slot;
  void Produce();

  BatchSampler sampler_;
  int64_t accum_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> free_;   // slots the producer may fill, in order
  std::deque<int> ready_;  // filled slots, in step order
  bool stop_ = false;
  std::string error_;  // set once drawing failed; the producer then stops
  std::thread thread_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_TRAIN_BATCH_PREFETCHER_H_
