// Trainer throughput per architecture and size: runs the real training loop (data, model, fused
// AdamW, autocast, bucketer when --force_ddp) for --warmup_steps, then again for --steps, and
// prints one markdown row per arch from the second run's summary (evaluation excluded). Peak
// memory is per arch: the allocator's peak is reset before each arch's runs.
//
// --profile adds, per arch, a forward / backward / optimizer breakdown from a separate loop on
// random tokens (same model, bf16 autocast and fused AdamW as training) that synchronises the
// device between phases: those syncs perturb the overlap, so the breakdown is for attribution and
// the throughput table stays sync-free.
//
//   bazel run -c opt --config=cuda //bench:trainer_bench -- --archs=standard,worker --size=seed \
//       --data=/path/to/input.txt
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <ATen/autocast_mode.h>
#ifdef GAUNTLET_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#include <chrono>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "trainer/dist/dist_env.h"
#include "trainer/dist/rendezvous.h"
#include "trainer/models/model.h"
#include "trainer/models/model_config.h"
#include "trainer/models/registry.h"
#include "trainer/train/adamw.h"
#include "trainer/train/clock.h"
#include "trainer/train/exit_code.h"
#include "trainer/train/train_loop.h"

ABSL_FLAG(std::string, archs, "standard,worker,sparse_depth,hybrid", "Comma-separated archs");
ABSL_FLAG(std::string, size, "seed", "Named model size");
ABSL_FLAG(std::string, data, "data/tinyshakespeare/input.txt", "Corpus path (relative to the working directory)");
ABSL_FLAG(int, batch_size, 16, "Sequences per micro-batch");
ABSL_FLAG(int, steps, 50, "Timed steps");
ABSL_FLAG(int, warmup_steps, 10, "Untimed steps first (kernels, allocator, caches)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda");
ABSL_FLAG(std::string, precision, "auto", "auto, fp32 or bf16");
ABSL_FLAG(bool, force_ddp, false, "Reduce gradients through the communicator at world size 1");
ABSL_FLAG(bool, profile, false,
          "Also print a per-step forward/backward/optimizer breakdown (device syncs between phases)");
ABSL_FLAG(int, profile_vocab_size, 65,
          "Vocabulary of the --profile loop's random tokens (65: TinyShakespeare's characters)");

namespace gauntlet {
namespace {

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void ResetPeakMemory(const torch::Device& device) {
#ifdef GAUNTLET_CUDA
  if (!device.is_cuda()) return;
  // The caching allocator sets itself up on first use and rejects queries before that.
  torch::zeros({1}, torch::TensorOptions().device(device));
  c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

struct PhaseMs {
  double forward = 0, backward = 0, optimizer = 0;
};

// Times the phases of one training step on random tokens; see the file comment.
absl::StatusOr<PhaseMs> ProfileArch(const std::string& arch, const torch::Device& device,
                                    bool bf16) {
  v1::ModelSpec spec;
  spec.set_arch(arch);
  spec.set_size(absl::GetFlag(FLAGS_size));
  absl::StatusOr<ModelConfig> config =
      ResolveModelConfig(spec, absl::GetFlag(FLAGS_profile_vocab_size));
  if (!config.ok()) return config.status();
  absl::StatusOr<std::shared_ptr<LanguageModelImpl>> model = CreateModel(*config);
  if (!model.ok()) return model.status();
  (*model)->to(device);
  (*model)->train();
  AdamW optimizer((*model)->parameters(), AdamWConfig());
  const torch::Tensor tokens =
      torch::randint(config->vocab_size, {absl::GetFlag(FLAGS_batch_size), config->seq_len + 1},
                     torch::TensorOptions().dtype(torch::kInt64).device(device));
  const torch::Tensor inputs = tokens.narrow(1, 0, config->seq_len);
  const torch::Tensor targets = tokens.narrow(1, 1, config->seq_len);
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  PhaseMs total;
  const int warmup = absl::GetFlag(FLAGS_warmup_steps);
  const int steps = std::max(1, absl::GetFlag(FLAGS_steps));
  for (int i = 0; i < warmup + steps; ++i) {
    optimizer.ZeroGrad();
    Synchronize(device);
    const Clock::time_point t0 = Clock::now();
    torch::Tensor loss;
    {
      if (bf16) {
        at::autocast::set_autocast_enabled(device.type(), true);
        at::autocast::set_autocast_dtype(device.type(), at::kBFloat16);
      }
      ModelOutput out = (*model)->Forward(inputs);
      loss = MaskedCrossEntropy(out.logits, targets, out.train_positions) + out.aux_loss;
      if (bf16) {
        at::autocast::set_autocast_enabled(device.type(), false);
        at::autocast::clear_cache();
      }
    }
    Synchronize(device);
    const Clock::time_point t1 = Clock::now();
    loss.backward();
    Synchronize(device);
    const Clock::time_point t2 = Clock::now();
    optimizer.Step(1e-4);
    Synchronize(device);
    const Clock::time_point t3 = Clock::now();
    if (i < warmup) continue;
    total.forward += ms(t0, t1) / steps;
    total.backward += ms(t1, t2) / steps;
    total.optimizer += ms(t2, t3) / steps;
  }
  return total;
}

int Main() {
  torch::Device device(torch::kCPU);
  const std::string device_flag = absl::GetFlag(FLAGS_device);
  if (device_flag == "cuda" || (device_flag == "auto" && torch::cuda::is_available())) {
    device = torch::Device(torch::kCUDA, 0);
  }
  absl::StatusOr<ProcessGroup> group =
      Rendezvous(DistEnv(), device, std::chrono::seconds(60));
  if (!group.ok()) {
    std::cerr << "error: " << group.status().message() << "\n";
    return static_cast<int>(ExitCode::kDistributed);
  }
  std::cout << "| arch | size | device | batch x T | tok/s | step ms | MFU | peak GiB | params |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  const std::vector<std::string> archs =
      absl::StrSplit(absl::GetFlag(FLAGS_archs), ',', absl::SkipEmpty());
  for (const std::string& arch : archs) {
    TrainerOptions options;
    v1::TrialSpec& spec = options.spec;
    spec.mutable_data()->set_path(absl::GetFlag(FLAGS_data));
    spec.mutable_model()->set_arch(arch);
    spec.mutable_model()->set_size(absl::GetFlag(FLAGS_size));
    spec.mutable_train()->set_batch_size(absl::GetFlag(FLAGS_batch_size));
    spec.mutable_train()->set_precision(absl::GetFlag(FLAGS_precision));
    spec.mutable_train()->set_log_every(1 << 30);  // no per-step host syncs inside the window
    spec.mutable_eval()->set_every_steps(0);
    spec.mutable_eval()->set_max_tokens(1);
    options.device = device;
    options.force_ddp = absl::GetFlag(FLAGS_force_ddp);
    ResetPeakMemory(device);
    SteadyClock clock;
    absl::StatusOr<v1::TrainerSummary> summary;
    for (int steps : {absl::GetFlag(FLAGS_warmup_steps), absl::GetFlag(FLAGS_steps)}) {
      spec.mutable_budget()->set_steps(std::max(1, steps));
      summary = RunTraining(options, *group->comm, clock, TrainerSinks());
      if (!summary.ok()) {
        std::cerr << "error: " << arch << ": " << summary.status().message() << "\n";
        return static_cast<int>(ExitCodeOf(summary.status()));
      }
    }
    const int64_t seq_len = summary->tokens() / (summary->steps() * absl::GetFlag(FLAGS_batch_size));
    std::cout << absl::StrFormat("| %s | %s | %s | %d x %d | %.0f | %.1f | %.1f%% | %.2f | %d |\n",
                                 arch, absl::GetFlag(FLAGS_size), device.str(),
                                 absl::GetFlag(FLAGS_batch_size), seq_len, summary->tokens_per_second(),
                                 1e3 / summary->steps_per_second(), summary->mfu() * 100,
                                 static_cast<double>(summary->peak_memory_bytes()) / (1 << 30),
                                 summary->params());
  }
  if (!absl::GetFlag(FLAGS_profile)) return 0;
  const std::string precision = absl::GetFlag(FLAGS_precision);
  const bool bf16 = device.is_cuda() && precision != "fp32";
  std::cout << "\n| arch | forward ms | backward ms | optimizer ms | sum ms |\n"
               "| --- | --- | --- | --- | --- |\n";
  for (const std::string& arch : archs) {
    absl::StatusOr<PhaseMs> phases = ProfileArch(arch, device, bf16);
    if (!phases.ok()) {
      std::cerr << "error: --profile " << arch << ": " << phases.status().message() << "\n";
      return static_cast<int>(ExitCode::kBadSpec);
    }
    std::cout << absl::StrFormat("| %s | %.2f | %.2f | %.2f | %.2f |\n", arch, phases->forward,
                                 phases->backward, phases->optimizer,
                                 phases->forward + phases->backward + phases->optimizer);
  }
  return 0;
}

}  // namespace
}  // namespace gauntlet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gauntlet::Main();
}
