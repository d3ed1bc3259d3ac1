#include "trainer/dist/grad_bucketer.h"

#include <mutex>
#include <utility>

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "absl/strings/str_cat.h"

namespace gauntlet {

struct GradBucketer::State {
  struct Bucket {
    std::vector<int> params;
    std::vector<int64_t> offsets;  // element offset of each param in `flat`
    torch::Tensor flat;
    int pending = 0;  // params whose gradient has not arrived this step
    std::unique_ptr<Work> work;
  };

  Communicator* comm = nullptr;
  std::vector<torch::Tensor> params;
  // Kept alive: autograd holds accumulators weakly, and our hooks live on them.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<Bucket> buckets;
  std::vector<int> bucket_of;    // param -> bucket
  std::vector<int> slot_of;      // param -> index inside its bucket
  std::vector<bool> arrived;     // param -> gradient copied this step

  std::mutex mu;
  bool sync = true;             // guarded by mu
  int next_launch = 0;          // guarded by mu
  int overlapped = 0;           // guarded by mu
  int last_overlapped = 0;      // guarded by mu

  // Copies param i's current gradient (or zeros) into its bucket slot.
  void CopyIn(int i) {
    Bucket& b = buckets[bucket_of[i]];
    const int slot = slot_of[i];
    torch::Tensor dst = b.flat.narrow(0, b.offsets[slot], params[i].numel());
    const torch::Tensor& grad = params[i].grad();
    torch::NoGradGuard no_grad;
    if (grad.defined()) {
      dst.copy_(grad.reshape({-1}));
    } else {
      dst.zero_();
    }
  }

  // Launches every leading bucket that is complete, in index order. Requires mu.
  void LaunchReady() {
    while (next_launch < static_cast<int>(buckets.size()) && buckets[next_launch].pending == 0) {
      buckets[next_launch].work = comm->AllReduceSum(buckets[next_launch].flat);
      ++next_launch;
    }
  }

  void OnGradReady(int i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!sync || arrived[i]) return;
    CopyIn(i);
    arrived[i] = true;
    --buckets[bucket_of[i]].pending;
    const int before = next_launch;
    LaunchReady();
    overlapped += next_launch - before;
  }
};

class GradBucketer::Hook : public torch::autograd::FunctionPostHook {
 public:
  Hook(std::weak_ptr<State> state, int index) : state_(std::move(state)), index_(index) {}
  torch::autograd::variable_list operator()(
      const torch::autograd::variable_list& outputs,
      const torch::autograd::variable_list& /*inputs*/) override {
    if (std::shared_ptr<State> state = state_.lock()) state->OnGradReady(index_);
    return outputs;
  }

 private:
  std::weak_ptr<State> state_;  // weak: the accumulator owns the hook, the state owns it back
  int index_;
};

absl::StatusOr<std::unique_ptr<GradBucketer>> GradBucketer::Create(
    std::vector<torch::Tensor> params, Communicator* comm, double bucket_mib) {
  if (comm == nullptr) return absl::InvalidArgumentError("GradBucketer: communicator is null");
  if (!(bucket_mib > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("train.bucket_mib: must be > 0, got ", bucket_mib));
  }
  if (params.empty()) return absl::InvalidArgumentError("GradBucketer: no parameters");
  auto state = std::make_shared<State>();
  state->comm = comm;
  const int n = static_cast<int>(params.size());
  const torch::Device device = params[0].device();
  for (int i = 0; i < n; ++i) {
    const torch::Tensor& p = params[i];
    if (!p.requires_grad() || p.is_sparse() || p.device() != device) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GradBucketer: parameter ", i, " must be dense, require grad and live on ", device.str()));
    }
  }
  state->params = std::move(params);
  state->bucket_of.assign(n, -1);
  state->slot_of.assign(n, -1);
  state->arrived.assign(n, false);

  // Reverse order; a new bucket starts when the size cap or the dtype would be exceeded.
  const double cap_bytes = bucket_mib * 1024.0 * 1024.0;
  std::vector<State::Bucket>& buckets = state->buckets;
  int64_t bucket_bytes = 0;
  for (int i = n - 1; i >= 0; --i) {
    const torch::Tensor& p = state->params[i];
    const int64_t bytes = p.numel() * p.element_size();
    const bool dtype_change =
        !buckets.empty() &&
        state->params[buckets.back().params.front()].scalar_type() != p.scalar_type();
    if (buckets.empty() || dtype_change || (bucket_bytes > 0 && bucket_bytes + bytes > cap_bytes)) {
      buckets.emplace_back();
      bucket_bytes = 0;
    }
    State::Bucket& b = buckets.back();
    state->bucket_of[i] = static_cast<int>(buckets.size()) - 1;
    state->slot_of[i] = static_cast<int>(b.params.size());
    b.offsets.push_back(bucket_bytes / p.element_size());
    b.params.push_back(i);
    bucket_bytes += bytes;
  }
  for (State::Bucket& b : buckets) {
    const torch::Tensor& last = state->params[b.params.back()];
    const int64_t numel = b.offsets.back() + last.numel();
    b.flat = torch::zeros({numel}, last.options().requires_grad(false));
    b.pending = static_cast<int>(b.params.size());
  }
  for (int i = 0; i < n; ++i) {
    std::shared_ptr<torch::autograd::Node> acc =
        torch::autograd::impl::grad_accumulator(state->params[i]);
    if (!acc) return absl::InvalidArgumentError(absl::StrCat("parameter ", i, " is not a leaf"));
    acc->add_post_hook(std::make_unique<Hook>(state, i));
    state->accumulators.push_back(std::move(acc));
  }
  return std::unique_ptr<GradBucketer>(new GradBucketer(std::move(state)));
}

GradBucketer::GradBucketer(std::shared_ptr<State> state) : state_(std::move(state)) {}

GradBucketer::~GradBucketer() = default;

void GradBucketer::set_sync(bool sync) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->sync = sync;
}

absl::Status GradBucketer::Finish() {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.sync) return absl::FailedPreconditionError("GradBucketer::Finish while sync is off");
  // Parameters backward never reached (unused this step) still take part, with their .grad
  // (from earlier micro-steps) or zeros, so every rank reduces the same buckets.
  for (int i = 0; i < static_cast<int>(s.params.size()); ++i) {
    if (s.arrived[i]) continue;
    s.CopyIn(i);
    s.arrived[i] = true;
    --s.buckets[s.bucket_of[i]].pending;
  }
  s.LaunchReady();
  absl::Status status;
  const double inv_world = 1.0 / s.comm->world_size();
  torch::NoGradGuard no_grad;
  for (State::Bucket& b : s.buckets) {
    absl::Status wait = b.work->Wait();
    b.work.reset();
    if (!wait.ok()) {
      if (status.ok()) status = wait;
      continue;
    }
    b.flat.mul_(inv_world);
    for (size_t slot = 0; slot < b.params.size(); ++slot) {
      torch::Tensor& p = s.params[b.params[slot]];
      torch::Tensor avg = b.flat.narrow(0, b.offsets[slot], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(avg);
      } else {
        p.mutable_grad() = avg.clone();
      }
    }
  }
  for (State::Bucket& b : s.buckets) b.pending = static_cast<int>(b.params.size());
  s.arrived.assign(s.arrived.size(), false);
  s.last_overlapped = s.overlapped;
  s.overlapped = 0;
  s.next_launch = 0;
  return status;
}

std::vector<std::vector<int>> GradBucketer::BucketLayout() const {
  std::vector<std::vector<int>> layout;
  for (const State::Bucket& b : state_->buckets) layout.push_back(b.params);
  return layout;
}

int GradBucketer::last_overlapped_buckets() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->last_overlapped;
}

}  // namespace gauntlet
