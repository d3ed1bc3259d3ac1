#include "trainer/train/batch_prefetcher.h"

#include <stdexcept>
#include <string>
#include <utility>

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace gauntlet {

struct BatchPrefetcher::Slot {
  torch::Tensor inputs;
  torch::Tensor targets;
  BatchSampler::State state;
#if GAUNTLET_CUDA
  // Recorded after the copies that read this slot; the producer waits for it before refilling.
  std::unique_ptr<at::cuda::CUDAEvent> released;
#endif
};

BatchPrefetcher::BatchPrefetcher(BatchSampler sampler, int64_t accum, bool pinned, int depth)
    : sampler_(std::move(sampler)), accum_(accum) {
  const auto options = torch::TensorOptions().dtype(torch::kInt64).pinned_memory(pinned);
  for (int i = 0; i < depth; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->inputs = torch::empty({accum_, sampler_.batch_size(), sampler_.seq_len()}, options);
    slot->targets = torch::empty_like(slot->inputs);
    slots_.push_back(std::move(slot));
    free_.push_back(i);
  }
  thread_ = std::thread([this] { Produce(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchPrefetcher::Produce() {
  while (true) {
    int index;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !free_.empty(); });
      if (stop_) return;
      index = free_.front();
      free_.pop_front();
    }
    Slot& slot = *slots_[index];
    std::string error;
    // A CUDA error in the wait reaches the training thread through Next(), not std::terminate.
    try {
#if GAUNTLET_CUDA
      if (slot.released != nullptr) slot.released->synchronize();
#endif
      for (int64_t micro = 0; micro < accum_; ++micro) {
        Batch batch = sampler_.Next();
        slot.inputs.select(0, micro).copy_(batch.inputs);
        slot.targets.select(0, micro).copy_(batch.targets);
      }
      slot.state = sampler_.state();
    } catch (const std::exception& e) {
      error = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error.empty()) {
        error_ = "batch prefetch: " + error;
        stop_ = true;
      } else {
        ready_.push_back(index);
      }
    }
    cv_.notify_all();
  }
}

StepBatch BatchPrefetcher::Next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !ready_.empty() || !error_.empty(); });
  if (ready_.empty()) throw std::runtime_error(error_);
  const int index = ready_.front();
  ready_.pop_front();
  const Slot& slot = *slots_[index];
  return StepBatch{index, slot.inputs, slot.targets, slot.state};
}

void BatchPrefetcher::Release(const StepBatch& batch) {
#if GAUNTLET_CUDA
  Slot& slot = *slots_[batch.slot];
  if (slot.inputs.is_pinned()) {
    if (slot.released == nullptr) slot.released = std::make_unique<at::cuda::CUDAEvent>();
    slot.released->record(at::cuda::getCurrentCUDAStream());
  }
#endif
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(batch.slot);
  }
  cv_.notify_all();
}

}  // namespace gauntlet
