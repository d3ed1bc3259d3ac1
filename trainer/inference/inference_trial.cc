#include "trainer/inference/inference_trial.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/model_config.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/data/token_dataset.h"
#include "trainer/inference/inference_bench.h"
#include "trainer/models/registry.h"
#include "trainer/train/exit_code.h"
#include "trainer/train/peak_flops.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace gauntlet {
namespace {

absl::Status BadSpec(absl::Status s) { return WithExitCode(std::move(s), ExitCode::kBadSpec); }

std::string DeviceName(const torch::Device& device) {
#if GAUNTLET_CUDA
  if (device.is_cuda()) {
    return absl::StrCat(device.str(), " ", at::cuda::getDeviceProperties(device.index())->name);
  }
#endif
  return device.str();
}

// Copies the parameters of the newest checkpoint under run_dir/checkpoints into `model`.
// Buffers are not loaded: they are the RoPE tables, rebuilt for this trial's window.
absl::StatusOr<std::string> LoadWeights(const std::string& run_dir, LanguageModelImpl& model) {
  CheckpointDir dir(run_dir + "/checkpoints", /*keep_last=*/1);  // read only: never saved to
  absl::StatusOr<std::optional<Checkpoint>> latest = dir.LoadLatest();
  if (!latest.ok()) return latest.status();
  if (!latest->has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("inference.checkpoint_path: no checkpoint in ", dir.dir()));
  }
  const Checkpoint& c = **latest;
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_parameters()) {
    auto it = c.tensors.find("model/" + item.key());
    if (it == c.tensors.end() || it->second.sizes() != item.value().sizes()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "inference.checkpoint_path: checkpoint step ", c.step, " in ", dir.dir(),
          " does not match this model (parameter ", item.key(), ")"));
    }
    item.value().copy_(it->second);
  }
  return absl::StrCat(run_dir, " step ", c.step);
}

}  // namespace

absl::StatusOr<v1::TrainerSummary> RunInferenceTrial(const v1::TrialSpec& spec,
                                                     const torch::Device& device, const Clock& clock,
                                                     std::ostream* log, EventWriter* events) {
  const v1::InferenceSpec& inference = spec.inference();
  absl::StatusOr<TokenDataset> dataset = TokenDataset::Open(spec.data());
  if (!dataset.ok()) return WithExitCode(dataset.status(), ExitCode::kBadData);

  InferenceBenchOptions options;
  options.prefill_contexts.assign(inference.prefill_contexts().begin(),
                                  inference.prefill_contexts().end());
  options.decode_batches.assign(inference.decode_batches().begin(),
                                inference.decode_batches().end());
  options.decode_context = inference.decode_context();
  options.decode_steps = inference.decode_steps();
  options.warmup = inference.warmup();
  options.repeats = inference.repeats();
  options.cuda_graphs = inference.cuda_graphs() && device.is_cuda();
  const std::string device_name = DeviceName(device);
  options.memory_bandwidth = PeakMemoryBandwidthBytesPerSecond(device_name).value_or(0.0);

  // The window grows to the longest context; that only extends the RoPE tables (no parameter
  // depends on it), so a checkpoint trained at a shorter window still loads.
  v1::ModelSpec model_spec = spec.model();
  int64_t window = options.decode_batches.empty() ? 1 : options.decode_context + options.decode_steps;
  for (const int64_t context : options.prefill_contexts) window = std::max(window, context);
  absl::StatusOr<ModelConfig> base = ResolveModelConfig(model_spec, dataset->vocab_size());
  if (!base.ok()) return BadSpec(base.status());
  model_spec.set_seq_len(static_cast<int32_t>(std::max<int64_t>(window, base->seq_len)));
  model_spec.set_dropout(0.0);
  absl::StatusOr<ModelConfig> config = ResolveModelConfig(model_spec, dataset->vocab_size());
  if (!config.ok()) return BadSpec(config.status());

  torch::manual_seed(static_cast<uint64_t>(spec.seed()));
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> created = CreateModel(*config);
  if (!created.ok()) return BadSpec(created.status());
  LanguageModelImpl& model = **created;
  if (!model.SupportsKvCache()) {
    return BadSpec(absl::InvalidArgumentError(
        absl::StrCat("model.arch: ", config->arch, " has no KV-cache decoding")));
  }
  std::string weights = absl::StrCat("random (seed ", spec.seed(), ")");
  if (!inference.checkpoint_path().empty()) {
    absl::StatusOr<std::string> loaded = LoadWeights(inference.checkpoint_path(), model);
    if (!loaded.ok()) return BadSpec(loaded.status());
    weights = *loaded;
  }
  model.to(device);
  const std::string& precision = spec.train().precision();
  const bool bf16 = precision == "bf16" || (precision != "fp32" && device.is_cuda());
  if (bf16) {
    // Parameters only, as a deployment casts them: the RoPE tables stay float32 so long-context
    // angles keep their precision.
    torch::NoGradGuard no_grad;
    for (torch::Tensor& p : model.parameters()) p.set_data(p.data().to(torch::kBFloat16));
  }
  if (events != nullptr) {
    v1::TrainerEvent event;
    v1::TrainerStarted* started = event.mutable_started();
    started->set_world_size(1);
    started->set_device(device_name);
    started->set_params(model.NumParameters());
    started->set_vocab_size(dataset->vocab_size());
    (void)events->Write(event);
  }
  if (log != nullptr) {
    *log << absl::StrFormat("inference: %s %s | %d params | %s | %s | weights %s\n", config->arch,
                            config->size, model.NumParameters(), device_name,
                            bf16 ? "bf16" : "fp32", weights);
    log->flush();
  }

  absl::StatusOr<InferenceBenchResult> r = RunInferenceBench(model, options, device, clock);
  if (!r.ok()) return BadSpec(r.status());

  v1::TrainerSummary summary;
  summary.set_arch(config->arch);
  summary.set_params(model.NumParameters());
  summary.set_world_size(1);
  summary.set_peak_memory_bytes(static_cast<double>(r->peak_memory_bytes));
  v1::InferenceResult& out = *summary.mutable_inference();
  out.set_precision(bf16 ? "bf16" : "fp32");
  out.set_device(device_name);
  out.set_weights(weights);
  out.set_decode_context(static_cast<int32_t>(options.decode_context));
  out.set_kv_cache_bytes_per_token(r->kv_cache_bytes_per_token);
  out.set_parameter_bytes(r->parameter_bytes);
  out.set_peak_memory_bytes(static_cast<double>(r->peak_memory_bytes));
  out.set_memory_bandwidth_bytes_per_second(options.memory_bandwidth);
  out.set_eager_reason(r->eager_reason);
  for (const PrefillTiming& p : r->prefill) {
    v1::PrefillLatency& row = *out.add_prefill();
    row.set_context(static_cast<int32_t>(p.context));
    row.set_seconds(p.ms / 1e3);
    if (log != nullptr) {
      *log << absl::StrFormat("inference: prefill %5d tokens %9.3f ms\n", p.context, p.ms);
    }
  }
  for (const DecodeTiming& d : r->decode) {
    v1::DecodeThroughput& row = *out.add_decode();
    row.set_batch(static_cast<int32_t>(d.batch));
    row.set_seconds_per_step(d.ms_per_step / 1e3);
    row.set_tokens_per_second(d.tokens_per_s);
    row.set_bytes_per_step(d.bytes_per_step);
    row.set_bandwidth_bound_seconds(d.bound_ms / 1e3);
    row.set_mode(d.cuda_graph ? "cuda_graph" : "eager");
    if (log != nullptr) {
      *log << absl::StrFormat(
          "inference: decode batch %3d %9.4f ms/step %10.0f tok/s (%s)%s\n", d.batch,
          d.ms_per_step, d.tokens_per_s, row.mode(),
          d.bound_ms > 0 ? absl::StrFormat(" | bandwidth bound %.4f ms (%.2f MB/step), %.2fx it",
                                           d.bound_ms, d.bytes_per_step / 1e6,
                                           d.ms_per_step / d.bound_ms)
                         : "");
    }
  }
  if (log != nullptr) {
    if (!r->eager_reason.empty()) *log << "inference: decoded eagerly: " << r->eager_reason << "\n";
    *log << absl::StrFormat("inference: KV cache %.0f bytes/token, peak memory %.1f MiB\n",
                            r->kv_cache_bytes_per_token,
                            static_cast<double>(r->peak_memory_bytes) / (1 << 20));
    log->flush();
  }
  if (events != nullptr) {
    v1::TrainerEvent event;
    *event.mutable_summary() = summary;
    (void)events->Write(event);
  }
  return summary;
}

}  // namespace gauntlet
