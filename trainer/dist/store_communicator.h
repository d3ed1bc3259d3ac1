#ifndef GAUNTLET_TRAINER_DIST_STORE_COMMUNICATOR_H_
#define GAUNTLET_TRAINER_DIST_STORE_COMMUNICATOR_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/dist/communicator.h"

namespace gauntlet {

// CPU collectives through c10d's key-value store (the TCPStore used for rendezvous). Gloo's
// headers are not shipped with the LibTorch wheel, so this is the CPU data-parallel path: it keeps
// tests and CPU-only workers on exactly the code path the GPUs use (same bucketer, same hooks).
//
// All-reduce: each rank publishes its bytes under a per-collective key, reads every rank's, and
// sums them in rank order, so all ranks compute the same floating-point expression and get
// identical bits. Traffic is O(world_size^2) through the store's server: fine for CPU training
// and tests, not meant for large gangs.
//
// Collectives run in issue order on one background thread with its own store client, so
// AllReduceSum returns at once and the caller's backward pass keeps computing.
class StoreCommunicator : public Communicator {
 public:
  // `store` is this rank's client; `prefix` namespaces the keys (one communicator per prefix).
  static absl::StatusOr<std::unique_ptr<StoreCommunicator>> Create(
      c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
      std::string prefix = "gauntlet/cpu");
  ~StoreCommunicator() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  std::unique_ptr<Work> AllReduceSum(torch::Tensor tensor) override;
  absl::Status Broadcast(torch::Tensor tensor, int root) override;
  absl::Status Barrier() override;
  absl::Status Finish() override;

 private:
  struct Op;
  class StoreWork;

  StoreCommunicator(c10::intrusive_ptr<c10d::Store> caller_store,
                    c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                    std::string prefix);
  // Queues `fn` (run on the background thread with the collective's key prefix) and returns its
  // handle.
  std::unique_ptr<Work> Enqueue(std::function<void(const std::string& key)> fn);
  void Loop();
  void DoAllReduce(const std::string& key, torch::Tensor tensor);
  void DoBroadcast(const std::string& key, torch::Tensor tensor, int root);
  void DoBarrier(const std::string& key);
  // Deletes a collective's keys once every rank has read them.
  void Release(const std::string& key);

  // Held so that rank 0's TCPStore server lives as long as the communicator.
  c10::intrusive_ptr<c10d::Store> caller_store_;
  c10::intrusive_ptr<c10d::Store> store_;  // this communicator's own connection
  const int rank_;
  const int world_size_;
  const std::string prefix_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Op>> queue_;  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  int64_t next_seq_ = 0;                   // guarded by mu_
  std::thread thread_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DIST_STORE_COMMUNICATOR_H_
