#ifndef GAUNTLET_TRAINER_DIST_GRAD_BUCKETER_H_
#define GAUNTLET_TRAINER_DIST_GRAD_BUCKETER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/dist/communicator.h"

namespace gauntlet {

// Data-parallel gradient averaging that overlaps communication with the backward pass.
//
// Parameters are packed into buckets of about `bucket_mib` MiB in reverse registration order
// (backward produces the last layers' gradients first). A post-hook on each parameter's
// AccumulateGrad node copies the accumulated .grad into its bucket's flat buffer; once a bucket
// is full it is all-reduced asynchronously while autograd keeps computing earlier layers.
// Post-hooks on the accumulator (rather than Tensor::register_hook, which sees the incoming
// gradient before accumulation) see the final .grad, which is what gradient accumulation needs.
//
// Buckets launch strictly in index order, so every rank issues the same collective sequence even
// if hooks fire in a different order. Finish() launches what backward did not reach (unused
// parameters contribute zeros), waits, divides by world_size and writes the averages back.
class GradBucketer {
 public:
  // `params` in the model's registration order; all must require grad and be dense, on one
  // device. `comm` must outlive the bucketer.
  static absl::StatusOr<std::unique_ptr<GradBucketer>> Create(std::vector<torch::Tensor> params,
                                                              Communicator* comm,
                                                              double bucket_mib);
  ~GradBucketer();
  GradBucketer(const GradBucketer&) = delete;
  GradBucketer& operator=(const GradBucketer&) = delete;

  // Off for the non-final micro-steps of gradient accumulation: hooks then do nothing and no
  // collective is issued. On by default.
  void set_sync(bool sync);

  // After the final micro-step's backward: completes every bucket and leaves each parameter's
  // .grad equal to the mean over ranks.
  absl::Status Finish();

  // Parameter indices (into `params`) of each bucket, in launch order.
  std::vector<std::vector<int>> BucketLayout() const;
  // Buckets launched from inside backward (overlapped) in the last Finish()ed step.
  int last_overlapped_buckets() const;

 private:
  struct State;
  class Hook;
  explicit GradBucketer(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

}  // namespace gauntlet

#endif  // GAUNTLET_TRAINER_DIST_GRAD_BUCKETER_H_
