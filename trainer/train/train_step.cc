#include "trainer/train/train_step.h"

#include <ATen/autocast_mode.h>

#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace gauntlet {
namespace {

// bf16 autocast for the forward pass. The cast cache stays off: every weight is cast once per
// forward anyway, and cached casts made outside a graph must never be used inside one.
class AutocastScope {
 public:
  AutocastScope(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
    cache_was_enabled_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
  }
  ~AutocastScope() {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(device_, false);
    at::autocast::set_autocast_cache_enabled(cache_was_enabled_);
  }

 private:
  bool enabled_;
  bool cache_was_enabled_ = true;
  c10::DeviceType device_;
};

#if GAUNTLET_CUDA
// Makes any host synchronisation inside the scope throw (CUDA's sync debug mode).
class NoSyncScope {
 public:
  explicit NoSyncScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    previous_ = c10::cuda::warning_state().get_sync_debug_mode();
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  }
  ~NoSyncScope() {
    if (enabled_) c10::cuda::warning_state().set_sync_debug_mode(previous_);
  }

 private:
  bool enabled_;
  c10::cuda::SyncDebugMode previous_ = c10::cuda::SyncDebugMode::L_DISABLED;
};

std::string FirstLine(const std::string& text) {
  const size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}
#endif

}  // namespace

#if GAUNTLET_CUDA
struct TrainStep::Graph {
  at::cuda::CUDAGraph graph;
};
#else
struct TrainStep::Graph {};
#endif

TrainStep::TrainStep(LanguageModelImpl* model, AdamW* optimizer, GradBucketer* bucketer,
                     std::vector<torch::Tensor> params, torch::Device device,
                     TrainStepOptions options, std::ostream* log)
    : model_(model),
      optimizer_(optimizer),
      bucketer_(bucketer),
      params_(std::move(params)),
      device_(device),
      options_(options),
      log_(log) {
  const auto scalar = torch::TensorOptions().device(device_).dtype(torch::kFloat32);
  loss_ = torch::zeros({}, scalar);
  lm_loss_ = torch::zeros({}, scalar);
  grad_norm_ = torch::zeros({}, scalar);
  lr_ = torch::zeros({}, scalar);
#if GAUNTLET_CUDA
  try_capture_ = options_.cuda_graphs && device_.is_cuda();
  if (try_capture_ && c10::cuda::getCurrentCUDAStream(device_.index()) ==
                          c10::cuda::getDefaultCUDAStream(device_.index())) {
    try_capture_ = false;
    description_ = "eager (CUDA graph capture needs a side stream; the caller left the default)";
  }
#else
  try_capture_ = false;
#endif
  if (description_.empty()) {
    description_ = try_capture_ ? "eager until capture" : "eager";
    if (device_.is_cuda() && !options_.cuda_graphs) description_ = "eager (train.cuda_graphs off)";
  }
}

TrainStep::~TrainStep() = default;

void TrainStep::Body(const torch::Tensor& inputs, const torch::Tensor& targets) {
  const int64_t accum = inputs.size(0);
  loss_.zero_();
  lm_loss_.zero_();
  for (int64_t micro = 0; micro < accum; ++micro) {
    if (bucketer_ != nullptr) bucketer_->set_sync(micro == accum - 1);
    torch::Tensor lm_loss, loss;
    {
      AutocastScope autocast(options_.bf16, device_.type());
      ModelOutput out = model_->ForwardHidden(inputs.select(0, micro));
      lm_loss = TrainingLoss(out, targets.select(0, micro));
      loss = out.aux_loss.defined() ? lm_loss + out.aux_loss : lm_loss;
      if (micro == accum - 1) stats_ = std::move(out.stats);
    }
    (loss / static_cast<double>(accum)).backward();
    loss_.add_(loss.detach(), 1.0 / static_cast<double>(accum));
    lm_loss_.add_(lm_loss.detach(), 1.0 / static_cast<double>(accum));
  }
  if (bucketer_ != nullptr) {
    if (absl::Status s = bucketer_->Finish(); !s.ok()) throw DistributedError(s);
  }
  // Global-norm clip on device scalars: no host sync.
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (torch::Tensor& p : params_) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  grad_norm_.copy_(torch::linalg_vector_norm(torch::stack(torch::_foreach_norm(grads)), 2));
  // Clipping multiplies the gradients by min(1, clip / (norm + 1e-6)); AdamW divides them by the
  // inverse inside its kernel, so the clip costs no pass over the gradients.
  const torch::Tensor grad_scale =
      options_.grad_clip > 0 ? torch::clamp_min((grad_norm_ + 1e-6) / options_.grad_clip, 1.0)
                             : torch::Tensor();
  optimizer_->Step(lr_, grad_scale);
}

void TrainStep::RunEager(const torch::Tensor& inputs, const torch::Tensor& targets, double lr) {
  const torch::Tensor device_inputs = inputs.to(device_, /*non_blocking=*/true);
  const torch::Tensor device_targets = targets.to(device_, /*non_blocking=*/true);
  lr_.fill_(lr);
  optimizer_->ZeroGrad();
#if GAUNTLET_CUDA
  // The first step builds models' cached device tables from host data; every later one must not
  // wait for the device.
  NoSyncScope no_sync(device_.is_cuda() && steps_run_ > 0);
#endif
  Body(device_inputs, device_targets);
}

#if GAUNTLET_CUDA
void ResetCudaGeneratorAfterFailedCapture(c10::DeviceIndex device) {
  at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto* impl = gen.get<at::CUDAGeneratorImpl>();
  auto fresh = c10::make_intrusive<at::CUDAGeneratorImpl>(device);
  fresh->set_current_seed(impl->current_seed());
  fresh->set_philox_offset_per_thread(impl->philox_offset_per_thread());
  impl->graphsafe_set_state(fresh);
}
#endif

bool TrainStep::Capture() {
#if GAUNTLET_CUDA
  optimizer_->EnsureState();
  // Undefined gradients: the captured backward allocates them from the graph's pool, so replays
  // rewrite them in place and the captured optimizer reads them there.
  optimizer_->ZeroGrad();
  auto graph = std::make_unique<Graph>();
  try {
    // Thread-local capture: the batch prefetcher's thread keeps waiting on its copy events while
    // this thread captures. In the default global mode that wait is an illegal call during a
    // capture (the prefetcher dies with "operation not permitted when stream is capturing").
    graph->graph.capture_begin(/*pool=*/{0, 0}, cudaStreamCaptureModeThreadLocal);
    try {
      Body(static_inputs_, static_targets_);
    } catch (...) {
      try {
        graph->graph.capture_end();  // ends the invalidated capture; reports it by throwing
      } catch (...) {
      }
      throw;
    }
    graph->graph.capture_end();
  } catch (const std::exception& e) {
    (void)cudaGetLastError();
    ResetCudaGeneratorAfterFailedCapture(device_.index());
    optimizer_->ZeroGrad();
    description_ = absl::StrCat("eager (CUDA graph capture failed: ", FirstLine(e.what()), ")");
    return false;
  }
  graph_ = std::move(graph);
  description_ = "CUDA graph";
  return true;
#else
  return false;
#endif
}

absl::Status TrainStep::Run(const torch::Tensor& inputs, const torch::Tensor& targets,
                            double lr) {
  if (inputs.dim() != 3 || inputs.sizes() != targets.sizes() ||
      inputs.size(0) != options_.accum) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainStep: inputs and targets must both be (accum=", options_.accum, ", B, T)"));
  }
#if GAUNTLET_CUDA
    if (graph_ == nullptr && try_capture_ && steps_run_ >= options_.eager_steps_before_capture) {
      try_capture_ = false;
      static_inputs_ = torch::empty(inputs.sizes(), inputs.options().device(device_));
      static_targets_ = torch::empty(targets.sizes(), targets.options().device(device_));
      static_inputs_.copy_(inputs, /*non_blocking=*/true);
      static_targets_.copy_(targets, /*non_blocking=*/true);
      lr_.fill_(lr);
      const bool captured = Capture();
      if (log_ != nullptr) *log_ << "train step: " << description_ << std::endl;
      if (captured) {
        graph_->graph.replay();  // capture only records: this runs the step
        ++steps_run_;
        return absl::OkStatus();
      }
    }
    if (graph_ != nullptr) {
      if (inputs.sizes() != static_inputs_.sizes()) {
        return absl::InvalidArgumentError("TrainStep: batch shape changed after capture");
      }
      static_inputs_.copy_(inputs, /*non_blocking=*/true);
      static_targets_.copy_(targets, /*non_blocking=*/true);
      lr_.fill_(lr);
      graph_->graph.replay();
      ++steps_run_;
      return absl::OkStatus();
    }
#endif
    RunEager(inputs, targets, lr);
    ++steps_run_;
    if (steps_run_ == 1 && !try_capture_ && log_ != nullptr) {
      *log_ << "train step: " << description_ << std::endl;
    }
  return absl::OkStatus();
}

}  // namespace gauntlet
