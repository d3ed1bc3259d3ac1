// The training loop, top to bottom: setup, resume, then per step (1) forward/backward over the
// micro-batches with the gradient all-reduce overlapping backward, (2) clip and update, then
// (3) diagnostics, evaluation and checkpoints, whose time is kept out of the budget.
#include "trainer/train/train_loop.h"

#include <ATen/autocast_mode.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/data/batch_sampler.h"
#include "trainer/data/token_dataset.h"
#include "trainer/dist/grad_bucketer.h"
#include "trainer/eval/evaluator.h"
#include "common/model_config.h"
#include "trainer/models/registry.h"
#include "trainer/train/adamw.h"
#include "trainer/train/batch_prefetcher.h"
#include "trainer/train/exit_code.h"
#include "trainer/train/fence.h"
#include "trainer/train/kernel_profile.h"
#include "trainer/train/peak_flops.h"
#include "trainer/train/schedule.h"
#include "trainer/train/train_step.h"

#if GAUNTLET_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace gauntlet {
namespace {

// Validation windows the post-hoc attention-drop scores are computed on.
constexpr int64_t kImportanceWindows = 8;

struct MemoryStats {
  double allocated = 0, reserved = 0, peak = 0;
};

MemoryStats DeviceMemory(const torch::Device& device) {
  MemoryStats m;
#if GAUNTLET_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    constexpr size_t kAll = 0;  // StatType::AGGREGATE
    m.allocated = static_cast<double>(stats.allocated_bytes[kAll].current);
    m.reserved = static_cast<double>(stats.reserved_bytes[kAll].current);
    m.peak = static_cast<double>(stats.allocated_bytes[kAll].peak);
  }
#endif
  return m;
}

std::string DeviceName(const torch::Device& device) {
#if GAUNTLET_CUDA
  if (device.is_cuda()) {
    return absl::StrCat(device.str(), " ", at::cuda::getDeviceProperties(device.index())->name);
  }
#endif
  return device.str();
}

void SynchronizeDevice(const torch::Device& device) {
#if GAUNTLET_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream(device.index()).synchronize();
#endif
}

// All-reduces doubles (sums) through the communicator, on its device.
absl::StatusOr<std::vector<double>> SumAcrossRanks(Communicator& comm, const torch::Device& device,
                                                   const std::vector<double>& values) {
  if (comm.world_size() == 1) return values;
  torch::Tensor t = torch::tensor(values, torch::kFloat64).to(device);
  if (absl::Status s = comm.AllReduceSum(t)->Wait(); !s.ok()) {
    return WithExitCode(s, ExitCode::kDistributed);
  }
  t = t.cpu();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

// FNV-1a 64 over every parameter's bytes in registration order.
uint64_t ParameterDigest(const std::vector<torch::Tensor>& params) {
  uint64_t hash = 14695981039346656037ULL;
  for (const torch::Tensor& p : params) {
    const torch::Tensor host = p.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const uint8_t*>(host.data_ptr());
    const size_t n = host.numel() * host.element_size();
    for (size_t i = 0; i < n; ++i) hash = (hash ^ bytes[i]) * 1099511628211ULL;
  }
  return hash;
}

// True iff every rank holds the same digest. Sums of the digest's four 16-bit chunks and of their
// squares are exact in doubles; the chunks agree on all ranks iff n * sum(x^2) == sum(x)^2.
absl::StatusOr<bool> SameOnAllRanks(Communicator& comm, const torch::Device& device,
                                    uint64_t digest) {
  std::vector<double> values;
  for (int i = 0; i < 4; ++i) values.push_back(static_cast<double>((digest >> (16 * i)) & 0xffff));
  for (int i = 0; i < 4; ++i) values.push_back(values[i] * values[i]);
  absl::StatusOr<std::vector<double>> sums = SumAcrossRanks(comm, device, values);
  if (!sums.ok()) return sums.status();
  for (int i = 0; i < 4; ++i) {
    if ((*sums)[4 + i] * comm.world_size() != (*sums)[i] * (*sums)[i]) return false;
  }
  return true;
}

std::string HumanCount(double n) {
  if (n >= 1e9) return absl::StrFormat("%.1fG", n / 1e9);
  if (n >= 1e6) return absl::StrFormat("%.1fM", n / 1e6);
  if (n >= 1e3) return absl::StrFormat("%.0fk", n / 1e3);
  return absl::StrFormat("%.0f", n);
}

absl::Status BadSpec(absl::Status s) { return WithExitCode(std::move(s), ExitCode::kBadSpec); }

}  // namespace

absl::StatusOr<v1::TrainerSummary> RunTraining(const TrainerOptions& options, Communicator& comm,
                                               const Clock& clock, const TrainerSinks& sinks) {
  const v1::TrialSpec& spec = options.spec;
  const torch::Device device = options.device;
  const int rank = comm.rank();
  const int world = comm.world_size();
  auto emit = [&](const v1::TrainerEvent& event) {
    if (sinks.events != nullptr) (void)sinks.events->Write(event);
  };

  // ---------------------------------------------------------------- setup
  absl::StatusOr<TokenDataset> dataset = TokenDataset::Open(spec.data());
  if (!dataset.ok()) return WithExitCode(dataset.status(), ExitCode::kBadData);
  absl::StatusOr<ModelConfig> config = ResolveModelConfig(spec.model(), dataset->vocab_size());
  if (!config.ok()) return BadSpec(config.status());
  const v1::TrainSpec& train = spec.train();
  const int64_t batch_size = train.has_batch_size() ? train.batch_size() : 16;
  const int64_t accum = train.has_grad_accum_steps() ? train.grad_accum_steps() : 1;
  const int64_t log_every = train.has_log_every() ? train.log_every() : 10;
  const double grad_clip = train.has_grad_clip() ? train.grad_clip() : 1.0;
  const double bucket_mib = train.has_bucket_mib() ? train.bucket_mib() : 25.0;
  if (batch_size < 1) {
    return BadSpec(absl::InvalidArgumentError(
        absl::StrCat("train.batch_size: must be >= 1, got ", batch_size)));
  }
  if (accum < 1) {
    return BadSpec(absl::InvalidArgumentError(
        absl::StrCat("train.grad_accum_steps: must be >= 1, got ", accum)));
  }
  if (log_every < 1) {
    return BadSpec(
        absl::InvalidArgumentError(absl::StrCat("train.log_every: must be >= 1, got ", log_every)));
  }
  if (!(grad_clip >= 0)) {
    return BadSpec(
        absl::InvalidArgumentError(absl::StrCat("train.grad_clip: must be >= 0, got ", grad_clip)));
  }
  bool bf16 = false;
  if (train.precision().empty() || train.precision() == "auto") {
    bf16 = device.is_cuda();
  } else if (train.precision() == "bf16") {
    bf16 = true;
  } else if (train.precision() != "fp32") {
    return BadSpec(absl::InvalidArgumentError(absl::StrCat(
        "train.precision: must be auto, fp32 or bf16, got \"", train.precision(), "\"")));
  }
  const int64_t seq_len = config->seq_len;
  const int64_t tokens_per_step = batch_size * seq_len * accum * world;
  absl::StatusOr<LrSchedule> schedule = LrSchedule::FromSpec(train);
  if (!schedule.ok()) return BadSpec(schedule.status());
  absl::StatusOr<Budget> budget = Budget::FromSpec(spec.budget(), tokens_per_step);
  if (!budget.ok()) return BadSpec(budget.status());
  absl::StatusOr<AdamWConfig> adamw_config = AdamWConfig::FromSpec(train.optimizer());
  if (!adamw_config.ok()) return BadSpec(adamw_config.status());
  absl::StatusOr<EvalOptions> eval_options =
      EvalOptions::FromSpec(spec.eval(), batch_size, /*final_eval=*/false);
  if (!eval_options.ok()) return BadSpec(eval_options.status());
  absl::StatusOr<EvalOptions> final_eval_options =
      EvalOptions::FromSpec(spec.eval(), batch_size, /*final_eval=*/true);
  if (!final_eval_options.ok()) return BadSpec(final_eval_options.status());
  // Defaults were applied once, when the spec was parsed (common/spec_defaults.cc).
  const int64_t eval_every = spec.eval().every_steps();
  const double eval_every_seconds = spec.eval().every_seconds();
  const int64_t ckpt_every = spec.checkpoint().every_steps();
  const int keep_last = spec.checkpoint().keep_last();
  if (eval_every < 0 || ckpt_every < 0 || keep_last < 1) {
    return BadSpec(absl::InvalidArgumentError(
        "eval.every_steps and checkpoint.every_steps must be >= 0, checkpoint.keep_last >= 1"));
  }

  absl::StatusOr<BatchSampler> sampler =
      BatchSampler::Create(*dataset, Split::kTrain, seq_len, batch_size, spec.seed(), rank);
  if (!sampler.ok()) return WithExitCode(sampler.status(), ExitCode::kBadData);

  // Same seed on every rank: identical initial weights (rank 0's are broadcast anyway) and the
  // same dropout stream, which keeps a checkpoint's single RNG state valid for every rank.
  torch::manual_seed(static_cast<uint64_t>(spec.seed()));
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> created = CreateModel(*config);
  if (!created.ok()) return BadSpec(created.status());
  std::shared_ptr<LanguageModelImpl> model = *created;
  model->to(device);
  std::vector<torch::Tensor> params = model->parameters();
  const int64_t num_params = model->NumParameters();
  const double flops_per_token = model->TrainingFlopsPerToken(seq_len);
  const double peak_flops = PeakBf16FlopsPerSecond(DeviceName(device)).value_or(0.0);
  AdamW optimizer(params, *adamw_config);

  std::unique_ptr<GradBucketer> bucketer;
  if (world > 1 || options.force_ddp) {
    for (torch::Tensor& p : params) {
      if (absl::Status s = comm.Broadcast(p.data(), 0); !s.ok()) {
        return WithExitCode(s, ExitCode::kDistributed);
      }
    }
    absl::StatusOr<std::unique_ptr<GradBucketer>> b =
        GradBucketer::Create(params, &comm, bucket_mib);
    if (!b.ok()) return BadSpec(b.status());
    bucketer = *std::move(b);
  }

  // ---------------------------------------------------------------- resume
  int64_t step = 0;
  int64_t tokens = 0;
  double train_seconds = 0, eval_seconds = 0, checkpoint_seconds = 0;
  // Kept in checkpoints so a run resumed with its budget already spent still reports it.
  double last_loss = std::nan("");
  std::optional<CheckpointDir> checkpoints;
  if (!spec.run_dir().empty()) checkpoints.emplace(spec.run_dir() + "/checkpoints", keep_last);
  if (checkpoints.has_value()) {
    absl::StatusOr<std::optional<Checkpoint>> latest = checkpoints->LoadLatest();
    if (!latest.ok()) return latest.status();
    if (latest->has_value()) {
      const Checkpoint& c = **latest;
      torch::NoGradGuard no_grad;
      for (const auto& item : model->named_parameters()) {
        const std::string& name = item.key();
        torch::Tensor tensor = item.value();
        auto it = c.tensors.find("model/" + name);
        if (it == c.tensors.end() || it->second.sizes() != tensor.sizes()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "checkpoint step ", c.step, " in ", checkpoints->dir(),
              " does not match this model (parameter ", name, ")"));
        }
        tensor.copy_(it->second);
      }
      for (const auto& item : model->named_buffers()) {
        if (auto it = c.tensors.find("buffer/" + item.key()); it != c.tensors.end()) {
          item.value().copy_(it->second);
        }
      }
      std::map<std::string, torch::Tensor> optim_state;
      for (const auto& [key, tensor] : c.tensors) {
        if (key.rfind("optim/", 0) == 0) optim_state[key.substr(6)] = tensor.to(device);
      }
      if (absl::Status s = optimizer.LoadStateDict(optim_state); !s.ok()) return s;
      BatchSampler::State state;
      state.seed = spec.seed();
      state.rank = rank;  // every rank draws the same number of words per step
      state.draws = static_cast<uint64_t>(c.ints.at("sampler/draws"));
      state.batches = c.ints.at("sampler/batches");
      if (absl::Status s = sampler->Restore(state); !s.ok()) return s;
      {
        // The generator is a process-wide singleton; its mutex guards concurrent draws.
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(c.tensors.at("rng/cpu"));
      }
#if GAUNTLET_CUDA
      if (device.is_cuda() && c.tensors.count("rng/cuda") != 0) {
        at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(device.index());
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(c.tensors.at("rng/cuda"));
      }
#endif
      step = c.step;
      tokens = c.ints.at("tokens");
      train_seconds = c.doubles.at("train_seconds");
      eval_seconds = c.doubles.at("eval_seconds");
      checkpoint_seconds = c.doubles.at("checkpoint_seconds");
      if (auto it = c.doubles.find("last_train_loss"); it != c.doubles.end()) {
        last_loss = it->second;
      }
    }
  }
  const int64_t resumed_from = step;
  // Sampler state after the last step taken: what checkpoints hold, however far the prefetcher
  // has read ahead.
  BatchSampler::State consumed = sampler->state();
  if (world > 1) {
    // Every rank must resume from the same checkpoint (run_dir on storage all ranks see).
    absl::StatusOr<std::vector<double>> steps =
        SumAcrossRanks(comm, device, {static_cast<double>(step)});
    if (!steps.ok()) return steps.status();
    if ((*steps)[0] != static_cast<double>(step) * world) {
      return WithExitCode(
          absl::FailedPreconditionError(absl::StrCat(
              "rank ", rank, " resumed from step ", step,
              " but other ranks did not: run_dir must be shared by every rank of the gang")),
          ExitCode::kDistributed);
    }
  }
  {
    v1::TrainerEvent event;
    v1::TrainerStarted* started = event.mutable_started();
    started->set_world_size(world);
    started->set_device(DeviceName(device));
    started->set_params(num_params);
    started->set_flops_per_token(flops_per_token);
    started->set_resumed_from_step(resumed_from);
    started->set_vocab_size(dataset->vocab_size());
    emit(event);
    if (sinks.log != nullptr) {
      *sinks.log << absl::StrFormat(
          "%s %s | %s params | %d rank(s) on %s | %s | batch %d x %d x %d accum | budget %s%s\n",
          config->arch, config->size, HumanCount(num_params), world, DeviceName(device),
          bf16 ? "bf16" : "fp32", batch_size, seq_len, accum, budget->Describe(),
          resumed_from > 0 ? absl::StrCat(" | resumed from step ", resumed_from) : "");
      sinks.log->flush();
    }
  }
  auto metric = [&](const std::string& name, double value) {
    v1::TrainerEvent event;
    v1::MetricPoint* m = event.mutable_metric();
    m->set_trial_id(options.trial_id);
    m->set_name(name);
    m->set_value(value);
    m->set_step(step);
    m->set_tokens(tokens);
    m->set_train_seconds(train_seconds);
    m->set_unix_time(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
    emit(event);
  };

  // Evaluation on every rank (each scores its share), sums all-reduced.
  EvalResult last_eval;
  google::protobuf::RepeatedPtrField<v1::SubmodelEval> submodel_evals;
  auto score = [&](const EvalOptions& eval) -> absl::StatusOr<EvalResult> {
    const double start = ClockSeconds(clock);
    absl::StatusOr<EvalResult> r = Evaluate(*model, *dataset, eval, device, rank, world);
    if (!r.ok()) return r.status();
    absl::StatusOr<std::vector<double>> sums = SumAcrossRanks(
        comm, device,
        {r->loss_sum, r->count, r->native_loss_sum, r->native_count, r->tokens_scored});
    if (!sums.ok()) return sums.status();
    r->loss_sum = (*sums)[0];
    r->count = (*sums)[1];
    r->native_loss_sum = (*sums)[2];
    r->native_count = (*sums)[3];
    r->tokens_scored = (*sums)[4];
    FinishEvalResult(*r);
    eval_seconds += ClockSeconds(clock) - start;
    return r;
  };
  auto evaluate = [&](const EvalOptions& eval) -> absl::Status {
    absl::StatusOr<EvalResult> r = score(eval);
    if (!r.ok()) return r.status();
    last_eval = *r;
    metric("val_loss", r->val_loss);
    metric("val_loss_native", r->val_loss_native);
    metric("val_bits_per_token", r->bits_per_token);
    metric("eval_seconds", eval_seconds);
    metric("epochs", dataset->EpochsFor(tokens));
    return absl::OkStatus();
  };
  // Rank 0 writes; every rank reaches the same decision, so no one waits on it.
  Fence fence(spec.run_dir().empty() ? "" : spec.run_dir() + "/fence", options.attempt,
              std::chrono::milliseconds(200));
  auto save_checkpoint = [&]() -> absl::Status {
    if (!checkpoints.has_value() || rank != 0) return absl::OkStatus();
    if (absl::Status s = fence.Check(/*force=*/true); !s.ok()) return s;
    const double start = ClockSeconds(clock);
    Checkpoint c;
    c.step = step;
    for (const auto& item : model->named_parameters()) c.tensors["model/" + item.key()] = item.value();
    for (const auto& item : model->named_buffers()) c.tensors["buffer/" + item.key()] = item.value();
    for (const auto& [key, tensor] : optimizer.StateDict()) c.tensors["optim/" + key] = tensor;
    c.tensors["rng/cpu"] = at::detail::getDefaultCPUGenerator().get_state();
#if GAUNTLET_CUDA
    if (device.is_cuda()) {
      c.tensors["rng/cuda"] = at::cuda::detail::getDefaultCUDAGenerator(device.index()).get_state();
    }
#endif
    c.ints["sampler/draws"] = static_cast<int64_t>(consumed.draws);
    c.ints["sampler/batches"] = consumed.batches;
    c.ints["tokens"] = tokens;
    c.doubles["train_seconds"] = train_seconds;
    c.doubles["eval_seconds"] = eval_seconds;
    c.doubles["checkpoint_seconds"] = checkpoint_seconds + (ClockSeconds(clock) - start);
    c.doubles["last_train_loss"] = last_loss;
    if (absl::Status s = checkpoints->Save(c); !s.ok()) return s;
    checkpoint_seconds += ClockSeconds(clock) - start;
    metric("checkpoint_seconds", checkpoint_seconds);
    return absl::OkStatus();
  };

  // ---------------------------------------------------------------- training
  model->train();
#if GAUNTLET_CUDA
  // Training runs on a side stream: a CUDA graph cannot be captured on the default stream.
  // Everything queued so far (initialisation, broadcast, resume) is finished first.
  std::optional<c10::cuda::CUDAStreamGuard> stream_guard;
  if (device.is_cuda()) {
    SynchronizeDevice(device);
    stream_guard.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
  }
#endif
  TrainStepOptions step_options;
  step_options.accum = accum;
  step_options.bf16 = bf16;
  step_options.grad_clip = grad_clip;
  step_options.cuda_graphs = !train.has_cuda_graphs() || train.cuda_graphs();
  // Held by pointer: the attention-drop stage replaces it (a changed model needs a new capture).
  auto train_step = std::make_unique<TrainStep>(model.get(), &optimizer, bucketer.get(), params,
                                                device, step_options, sinks.log);
  BatchPrefetcher prefetcher(*std::move(sampler), accum, /*pinned=*/device.is_cuda());
  if (world > 1) {
    // Ranks of a gang spread over several agents start up to a heartbeat apart: the clock starts
    // once every rank is here, so waiting for a late peer is not counted as training time.
    if (absl::Status s = comm.Barrier(); !s.ok()) return WithExitCode(s, ExitCode::kDistributed);
  }
  std::unique_ptr<KernelProfile> profile;
  double profile_start = 0;
  double window_start = ClockSeconds(clock);  // training time since the last pause
  int64_t window_steps = 0;
  double window_train_seconds = 0;
  double last_val = std::nan("");
  double last_eval_time = train_seconds;
  auto pause_clock = [&] {  // everything queued so far is training time
    SynchronizeDevice(device);
    const double now = ClockSeconds(clock);
    train_seconds += now - window_start;
    window_train_seconds += now - window_start;
    window_start = now;
  };
  auto resume_clock = [&] { window_start = ClockSeconds(clock); };
  auto budget_done = [&]() -> absl::StatusOr<bool> {
    if (!budget->is_seconds()) return budget->Done(step, tokens, 0);
    // Ranks' clocks differ: rank 0's time decides for everyone, once per log window.
    if (world > 1 && step % log_every != 0) return false;
    const double elapsed = train_seconds + (ClockSeconds(clock) - window_start);
    absl::StatusOr<std::vector<double>> t =
        SumAcrossRanks(comm, device, {rank == 0 ? elapsed : 0.0});
    if (!t.ok()) return t.status();
    return budget->Done(step, tokens, (*t)[0]);
  };

  // ---- the post-hoc attention-drop stage (stages.attn_drop), after training and its checkpoint:
  // drop the least important attention sub-layers, evaluate, fine-tune, evaluate again.
  double layers_per_token = std::nan("");
  const v1::AttnDropStage& drop_stage = spec.stages().attn_drop();
  v1::AttnDropResult attn_drop_result;
  auto run_attn_drop_stage = [&](const std::vector<double>& rank0_importance) -> absl::Status {
    // Every rank must drop the same layers: rank 0's scores decide (the others add zeros).
    std::vector<double> local(config->n_layers, 0.0);
    if (rank == 0) local = rank0_importance;
    if (static_cast<int64_t>(local.size()) != config->n_layers) {
      return absl::InternalError(absl::StrCat("stages.attn_drop: arch ", config->arch,
                                              " reports no attention importance"));
    }
    absl::StatusOr<std::vector<double>> shared = SumAcrossRanks(comm, device, local);
    if (!shared.ok()) return shared.status();
    std::vector<int64_t> order;
    for (int64_t i = 0; i < config->n_layers; ++i) {
      if (!std::isnan((*shared)[i])) order.push_back(i);
    }
    if (static_cast<int64_t>(order.size()) < drop_stage.drop()) {
      return BadSpec(absl::InvalidArgumentError(
          absl::StrCat("stages.attn_drop.drop: ", drop_stage.drop(), " exceeds the ", order.size(),
                       " attention layers")));
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return (*shared)[a] < (*shared)[b]; });
    std::vector<int64_t> dropped(order.begin(), order.begin() + drop_stage.drop());
    std::sort(dropped.begin(), dropped.end());
    for (const double v : *shared) attn_drop_result.add_importance(v);
    for (const int64_t layer : dropped) attn_drop_result.add_dropped_layers(layer);
    attn_drop_result.set_val_loss_before(last_eval.val_loss);
    model->DropAttention(dropped);
    const std::string name = absl::StrCat("drop_attn=", absl::StrJoin(dropped, ","));
    auto add_row = [&](const std::string& row) -> absl::StatusOr<double> {
      absl::StatusOr<EvalResult> r = score(*final_eval_options);
      if (!r.ok()) return r.status();
      v1::SubmodelEval* eval = submodel_evals.Add();
      eval->set_name(row);
      eval->set_val_loss(r->val_loss);
      eval->set_val_loss_native(r->val_loss_native);
      eval->set_val_bits_per_token(r->bits_per_token);
      return r->val_loss;
    };
    absl::StatusOr<double> after_drop = add_row(name);
    if (!after_drop.ok()) return after_drop.status();
    attn_drop_result.set_val_loss_after_drop(*after_drop);
    metric("attn_drop/val_loss_after_drop", *after_drop);
    const int64_t steps = drop_stage.finetune_steps();
    attn_drop_result.set_finetune_steps(steps);
    if (steps > 0) {
      // The learning rate training ended with, unless the stage sets its own.
      const int64_t last = std::max<int64_t>(step - 1, 0);
      const double lr = drop_stage.has_finetune_lr()
                            ? drop_stage.finetune_lr()
                            : schedule->At(last, budget->DecayProgress(last, train_seconds,
                                                                       schedule->warmup_steps()));
      attn_drop_result.set_finetune_lr(lr);
      model->train();
      // Same optimizer (its moments carry on) and data stream; the removed parameters get no
      // gradient (AdamW skips them; with several ranks the bucketer averages zeros for them).
      TrainStep finetune(model.get(), &optimizer, bucketer.get(), params, device, step_options,
                         sinks.log);
      SynchronizeDevice(device);
      const double start = ClockSeconds(clock);
      for (int64_t i = 0; i < steps; ++i) {
        const StepBatch batch = prefetcher.Next();
        absl::Status stepped = finetune.Run(batch.inputs, batch.targets, lr);
        prefetcher.Release(batch);
        if (!stepped.ok()) return stepped;
      }
      SynchronizeDevice(device);
      attn_drop_result.set_finetune_seconds(ClockSeconds(clock) - start);
      absl::StatusOr<std::vector<double>> loss =
          SumAcrossRanks(comm, device, {finetune.lm_loss().item<double>()});
      if (!loss.ok()) return loss.status();
      const double finetune_loss = (*loss)[0] / world;
      if (!std::isfinite(finetune_loss)) {
        return WithExitCode(absl::InternalError(absl::StrCat(
                                "attention-drop fine-tuning loss is ", finetune_loss)),
                            ExitCode::kNonFinite);
      }
      attn_drop_result.set_finetune_train_loss(finetune_loss);
      absl::StatusOr<double> after = add_row(absl::StrCat(name, "+ft", steps));
      if (!after.ok()) return after.status();
      attn_drop_result.set_val_loss_after_finetune(*after);
      metric("attn_drop/val_loss_after_finetune", *after);
    }
    if (sinks.log != nullptr) {
      *sinks.log << absl::StrFormat("attention drop: layers %s | val %.4f -> %.4f after the drop",
                                    absl::StrJoin(dropped, ","),
                                    attn_drop_result.val_loss_before(),
                                    attn_drop_result.val_loss_after_drop());
      if (steps > 0) {
        *sinks.log << absl::StrFormat(" -> %.4f after %d fine-tuning steps (%.1f s)",
                                      attn_drop_result.val_loss_after_finetune(), steps,
                                      attn_drop_result.finetune_seconds());
      }
      *sinks.log << std::endl;
    }
    return absl::OkStatus();
  };

  try {
    absl::StatusOr<bool> done = budget_done();
    if (!done.ok()) return done.status();
    bool finished = *done;
    while (!finished) {
      // ---- step: forward/backward over the micro-batches (buckets all-reduce during the last
      // backward), clip and fused AdamW; one CUDA graph replay once captured.
      const double elapsed = train_seconds + (ClockSeconds(clock) - window_start);
      const double lr = schedule->At(
          step, budget->DecayProgress(step, elapsed, schedule->warmup_steps()));
      constexpr int64_t kProfileFrom = 20;  // steps in: past the eager steps and the capture
      if (options.profile_steps > 0 && rank == 0 && step == resumed_from + kProfileFrom) {
        SynchronizeDevice(device);
        profile = KernelProfile::Start();
        profile_start = ClockSeconds(clock);
      }
      if (profile != nullptr && step == resumed_from + kProfileFrom + options.profile_steps) {
        SynchronizeDevice(device);
        const std::string table = profile->Finish(options.profile_steps,
                                                  ClockSeconds(clock) - profile_start);
        profile.reset();
        if (sinks.log != nullptr) *sinks.log << table << std::flush;
      }
      const StepBatch batch = prefetcher.Next();
      absl::Status stepped = train_step->Run(batch.inputs, batch.targets, lr);
      prefetcher.Release(batch);
      if (!stepped.ok()) return stepped;
      consumed = batch.sampler_state;
      ++step;
      ++window_steps;
      tokens += tokens_per_step;

      // ---- diagnostics (rank 0 prints; the loss all-reduce is collective)
      done = budget_done();
      if (!done.ok()) return done.status();
      finished = *done;
      const bool last_step = finished;
      if (step % log_every == 0 || last_step) {
        // The LM loss is what is reported (comparable across archs); the total, with any
        // auxiliary loss, is what must stay finite.
        absl::StatusOr<std::vector<double>> loss_sum = SumAcrossRanks(
            comm, device,
            {train_step->lm_loss().item<double>(), train_step->loss().item<double>()});
        if (!loss_sum.ok()) return loss_sum.status();
        last_loss = (*loss_sum)[0] / world;
        const double total_loss = (*loss_sum)[1] / world;
        if (!std::isfinite(total_loss)) {
          return WithExitCode(
              absl::InternalError(absl::StrCat("train loss is ", total_loss, " at step ", step)),
              ExitCode::kNonFinite);
        }
        pause_clock();
        const double step_seconds = window_train_seconds / std::max<int64_t>(window_steps, 1);
        const double tok_per_s = tokens_per_step / step_seconds;
        const double mfu = Mfu(flops_per_token, tok_per_s, peak_flops, world);
        const MemoryStats mem = DeviceMemory(device);
        const double norm = train_step->grad_norm().item<double>();
        metric("train_loss", last_loss);
        metric("lr", lr);
        metric("grad_norm", norm);
        // Names as coordinator.proto's MetricPoint.name lists them (the coordinator exports
        // only those).
        metric("step_time_seconds", step_seconds);
        metric("steps_per_second", 1.0 / step_seconds);
        metric("tokens_per_second", tok_per_s);
        if (peak_flops > 0) metric("mfu", mfu);
        if (device.is_cuda()) {
          metric("gpu_memory_allocated_bytes", mem.allocated);
          metric("gpu_memory_reserved_bytes", mem.reserved);
          metric("gpu_memory_peak_bytes", mem.peak);
        }
        if (auto it = train_step->stats().find("layers_per_token");
            it != train_step->stats().end()) {
          metric("layers_per_token", it->second.item<double>());
        }
        if (sinks.log != nullptr) {
          std::string line = absl::StrFormat("step %d/%s | loss %.4f", step, budget->Describe(),
                                             last_loss);
          if (!std::isnan(last_val)) absl::StrAppendFormat(&line, " | val %.4f", last_val);
          absl::StrAppendFormat(&line, " | lr %.1e | %.0f ms", lr, step_seconds * 1e3);
          if (peak_flops > 0) absl::StrAppendFormat(&line, " | %.0f%% MFU", mfu * 100);
          absl::StrAppendFormat(&line, " | %s tok/s", HumanCount(tok_per_s));
          if (device.is_cuda()) absl::StrAppendFormat(&line, " | %.1f GiB", mem.peak / (1 << 30));
          *sinks.log << line << "\n";
          sinks.log->flush();
        }
        window_steps = 0;
        window_train_seconds = 0;
        resume_clock();
      }
      // A superseded attempt stops here, within a fraction of a second of the next one's claim.
      if (absl::Status s = fence.Check(); !s.ok()) return s;
      // ---- evaluation and checkpoints: off the budget clock.
      bool seconds_eval_due = false;
      if (!last_step && eval_every_seconds > 0 && step % log_every == 0) {
        // Rank 0's clock decides, so every rank evaluates (a collective) at the same step.
        absl::StatusOr<std::vector<double>> since = SumAcrossRanks(
            comm, device, {rank == 0 ? train_seconds - last_eval_time : 0.0});
        if (!since.ok()) return since.status();
        seconds_eval_due = (*since)[0] >= eval_every_seconds;
      }
      const bool eval_due =
          !last_step && ((eval_every > 0 && step % eval_every == 0) || seconds_eval_due);
      const bool ckpt_due = !last_step && ckpt_every > 0 && step % ckpt_every == 0;
      if (eval_due || ckpt_due) {
        pause_clock();
        if (eval_due) {
          if (absl::Status s = evaluate(*eval_options); !s.ok()) return s;
          last_val = last_eval.val_loss;
          last_eval_time = train_seconds;
          model->train();
        }
        if (ckpt_due) {
          if (absl::Status s = save_checkpoint(); !s.ok()) return s;
        }
        window_train_seconds = 0;
        window_steps = 0;
        resume_clock();
      }
    }
    pause_clock();
    if (absl::Status s = evaluate(*final_eval_options); !s.ok()) return s;
    // Each submodel (e.g. a MatFormer granularity) scored like the final evaluation, for its own
    // row in compare; then the configured model again, for the checkpoint and the digest.
    for (const std::string& name : model->SubmodelNames()) {
      model->SelectSubmodel(name);
      absl::StatusOr<EvalResult> r = score(*final_eval_options);
      if (!r.ok()) return r.status();
      v1::SubmodelEval* eval = submodel_evals.Add();
      eval->set_name(name);
      eval->set_val_loss(r->val_loss);
      eval->set_val_loss_native(r->val_loss_native);
      eval->set_val_bits_per_token(r->bits_per_token);
    }
    model->SelectSubmodel("");
    if (auto it = train_step->stats().find("layers_per_token"); it != train_step->stats().end()) {
      layers_per_token = it->second.item<double>();
    }
    // Post-hoc attention drop (docs/ARCHITECTURES.md "attn_drop"): each layer's attention
    // importance on the first validation windows, as metrics attn_importance/<layer>; rank 0
    // scores (no collectives) since it alone reports.
    std::vector<double> importance;
    if (rank == 0) {
      const int64_t windows = std::min<int64_t>(
          drop_stage.has_calibration_windows() ? drop_stage.calibration_windows()
                                               : kImportanceWindows,
          (dataset->val_size() - 1) / seq_len);
      std::vector<int64_t> calibration(std::max<int64_t>(windows, 0) * seq_len);
      for (int64_t i = 0; i < windows; ++i) {
        if (absl::Status s = dataset->CopyWindow(Split::kVal, i * seq_len, seq_len,
                                                 calibration.data() + i * seq_len);
            !s.ok()) {
          return s;
        }
      }
      if (windows > 0) {
        const torch::Tensor tokens =
            torch::from_blob(calibration.data(), {windows, seq_len}, torch::kInt64).to(device);
        importance = model->AttentionImportance(tokens);
        for (size_t layer = 0; layer < importance.size(); ++layer) {
          if (!std::isnan(importance[layer])) {
            metric(absl::StrCat("attn_importance/", layer), importance[layer]);
          }
        }
      }
    }
    // The checkpoint holds the trained model: a rerun after it repeats the stage from there.
    if (absl::Status s = save_checkpoint(); !s.ok()) return s;
    if (spec.stages().has_attn_drop()) {
      train_step.reset();  // frees its captured graph; the dropped model is captured anew
      if (absl::Status s = run_attn_drop_stage(importance); !s.ok()) return s;
    }
  } catch (const DistributedError& e) {
    return WithExitCode(e.status(), ExitCode::kDistributed);
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("step ", step + 1).c_str());
  }

  // ---------------------------------------------------------------- replica check
  const uint64_t digest = ParameterDigest(params);
  absl::StatusOr<bool> identical = SameOnAllRanks(comm, device, digest);
  if (!identical.ok()) return identical.status();
  if (!*identical) {
    return WithExitCode(absl::InternalError("replicas diverged: final parameters differ across ranks"),
                        ExitCode::kDistributed);
  }
  if (sinks.log != nullptr && world > 1) {
    *sinks.log << "replicas: " << world << " ranks hold bit-identical parameters (digest "
               << absl::StrFormat("%016x", digest) << ")" << std::endl;
  }

  // ---------------------------------------------------------------- summary
  v1::TrainerSummary summary;
  summary.set_arch(config->arch);
  summary.set_params(num_params);
  summary.set_steps(step);
  summary.set_tokens(tokens);
  summary.set_epochs(dataset->EpochsFor(tokens));
  summary.set_train_split_tokens(dataset->train_size());
  summary.set_train_seconds(train_seconds);
  summary.set_eval_seconds(eval_seconds);
  summary.set_checkpoint_seconds(checkpoint_seconds);
  const double tps = train_seconds > 0 ? tokens / train_seconds : 0;
  summary.set_tokens_per_second(tps);
  summary.set_steps_per_second(train_seconds > 0 ? step / train_seconds : 0);
  summary.set_final_train_loss(last_loss);
  summary.set_final_val_loss(last_eval.val_loss);
  summary.set_final_val_loss_native(last_eval.val_loss_native);
  summary.set_final_val_bits_per_token(last_eval.bits_per_token);
  summary.set_mfu(Mfu(flops_per_token, tps, peak_flops, world));
  summary.set_peak_memory_bytes(DeviceMemory(device).peak);
  if (!std::isnan(layers_per_token)) summary.set_layers_per_token(layers_per_token);
  summary.set_eval_protocol(ProtocolName(final_eval_options->protocol));
  summary.set_val_tokens_scored(static_cast<int64_t>(last_eval.tokens_scored));
  summary.set_world_size(world);
  summary.set_param_digest(absl::StrFormat("%016x", digest));
  *summary.mutable_submodels() = std::move(submodel_evals);
  if (spec.stages().has_attn_drop()) *summary.mutable_attn_drop() = attn_drop_result;
  v1::TrainerEvent event;
  *event.mutable_summary() = summary;
  emit(event);
  return summary;
}

}  // namespace gauntlet
