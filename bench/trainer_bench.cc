// Trainer throughput per architecture and size: runs the real training loop (data, model, fused
// AdamW, autocast, bucketer when --force_ddp) for --warmup_steps, then again for --steps, and
// prints one markdown row per arch from the second run's summary (evaluation excluded).
//
//   bazel run -c opt --config=cuda //bench:trainer_bench -- --archs=standard,worker --size=seed \
//       --data=/path/to/input.txt
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "trainer/dist/dist_env.h"
#include "trainer/dist/rendezvous.h"
#include "trainer/train/clock.h"
#include "trainer/train/exit_code.h"
#include "trainer/train/train_loop.h"

ABSL_FLAG(std::string, archs, "standard,worker,sparse_depth,hybrid", "Comma-separated archs");
ABSL_FLAG(std::string, size, "seed", "Named model size");
ABSL_FLAG(std::string, data, "../shared/data/tinyshakespeare/input.txt", "Corpus path");
ABSL_FLAG(int, batch_size, 16, "Sequences per micro-batch");
ABSL_FLAG(int, steps, 50, "Timed steps");
ABSL_FLAG(int, warmup_steps, 10, "Untimed steps first (kernels, allocator, caches)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda");
ABSL_FLAG(std::string, precision, "auto", "auto, fp32 or bf16");
ABSL_FLAG(bool, force_ddp, false, "Reduce gradients through the communicator at world size 1");

namespace gauntlet {
namespace {

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
                                 summary->peak_memory_bytes() / (1 << 30), summary->params());
  }
  return 0;
}

}  // namespace
}  // namespace gauntlet

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return gauntlet::Main();
}
