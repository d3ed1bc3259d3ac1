#include "trainer/inference/inference_bench.h"

#include <torch/torch.h>

#if GAUNTLET_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <algorithm>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace gauntlet {
namespace {

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void ResetPeakMemory(const torch::Device& device) {
#if GAUNTLET_CUDA
  if (!device.is_cuda()) return;
  torch::zeros({1}, torch::TensorOptions().device(device));  // the allocator starts on first use
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

int64_t PeakMemory(const torch::Device& device) {
#if GAUNTLET_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    constexpr size_t kAll = 0;  // StatType::AGGREGATE
    return stats.allocated_bytes[kAll].peak;
  }
#endif
  return 0;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Seconds of each of `repeats` timed runs of `run`, after `warmup` untimed ones. `setup` runs
// before each, untimed.
std::vector<double> Time(const InferenceBenchOptions& options, const torch::Device& device,
                         const Clock& clock, const std::function<void()>& setup,
                         const std::function<void()>& run) {
  std::vector<double> seconds;
  for (int i = 0; i < options.warmup + options.repeats; ++i) {
    setup();
    Synchronize(device);
    const double start = ClockSeconds(clock);
    run();
    Synchronize(device);
    if (i >= options.warmup) seconds.push_back(ClockSeconds(clock) - start);
  }
  return seconds;
}

}  // namespace

absl::StatusOr<InferenceBenchResult> RunInferenceBench(LanguageModelImpl& model,
                                                       const InferenceBenchOptions& options,
                                                       const torch::Device& device, const Clock& clock) {
  const ModelConfig& c = model.config();
  if (!model.SupportsKvCache()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.arch: ", c.arch, " has no KV-cache decoding"));
  }
  if (options.static_decode && !model.SupportsStaticDecode()) {
    return absl::InvalidArgumentError(
        absl::StrCat("static_decode: ", c.arch, " has no static decode step"));
  }
  if (options.repeats < 1 || options.warmup < 0) {
    return absl::InvalidArgumentError("repeats must be >= 1 and warmup >= 0");
  }
  for (const int64_t context : options.prefill_contexts) {
    if (context < 1 || context > c.seq_len) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prefill_contexts: ", context, " outside [1, model.seq_len ", c.seq_len, "]"));
    }
  }
  if (options.decode_context < 1 || options.decode_steps < 1 ||
      options.decode_context + options.decode_steps > c.seq_len) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode_context + decode_steps: ", options.decode_context, " + ",
                     options.decode_steps, " must be positive and fit model.seq_len ", c.seq_len));
  }
  for (const int64_t batch : options.decode_batches) {
    if (batch < 1) {
      return absl::InvalidArgumentError(absl::StrCat("decode_batches: ", batch, " < 1"));
    }
  }
  model.eval();
  torch::NoGradGuard no_grad;
  ResetPeakMemory(device);
  InferenceBenchResult result;
  for (const auto& p : model.parameters()) result.parameter_bytes += p.numel() * p.element_size();
  const auto token_options = torch::TensorOptions().dtype(torch::kInt64).device(device);

  for (const int64_t context : options.prefill_contexts) {
    const torch::Tensor prompt = torch::randint(c.vocab_size, {1, context}, token_options);
    KvCache cache;
    const std::vector<double> seconds = Time(
        options, device, clock, [&] { cache = model.NewKvCache(1, context); },
        [&] { model.Prefill(cache, prompt); });
    result.prefill.push_back({context, 1e3 * Median(seconds)});
  }

  const int64_t max_len = options.decode_context + options.decode_steps;
  for (const int64_t batch : options.decode_batches) {
    const torch::Tensor tokens = torch::randint(c.vocab_size, {batch, max_len}, token_options);
    const torch::Tensor prompt = tokens.narrow(1, 0, options.decode_context);
    KvCache cache;
    const std::vector<double> seconds = Time(
        options, device, clock,
        [&] {
          cache = model.NewKvCache(batch, max_len);
          model.Prefill(cache, prompt);
        },
        [&] {
          // Teacher-forced: the step's cost does not depend on which token is fed.
          for (int64_t t = options.decode_context; t < max_len; ++t) {
            if (options.static_decode) {
              model.DecodeStepStatic(cache, tokens.select(1, t));
            } else {
              model.DecodeStep(cache, tokens.select(1, t));
            }
          }
        });
    if (result.decode.empty()) {
      result.kv_cache_bytes_per_token =
          static_cast<double>(cache.KeyValueBytes()) / static_cast<double>(batch * max_len);
    }
    const double ms_per_step = 1e3 * Median(seconds) / static_cast<double>(options.decode_steps);
    result.decode.push_back(
        {batch, ms_per_step, ms_per_step > 0 ? 1e3 * static_cast<double>(batch) / ms_per_step : 0});
  }
  result.peak_memory_bytes = PeakMemory(device);
  return result;
}

}  // namespace gauntlet
