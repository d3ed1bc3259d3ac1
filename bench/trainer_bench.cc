// Trainer throughput per architecture and size: runs the real training loop (data, model, fused
// AdamW, autocast, bucketer when --force_ddp) for --warmup_steps, then again for --steps, and
// prints one markdown row per arch from the second run's summary (evaluation excluded). Peak
// memory is per arch: the allocator's peak is reset before each arch's runs.
//
// --models runs benchmark models by name instead ("seed-worker" = arch worker at size seed,
// "gpt2-small" = standard at size gpt2-small), and --json_out writes one JSON row per model for
// bench/reference/report.py (bench/side_by_side.sh): tokens/s (median of --repeats timed runs),
// MFU, and the FLOPs per token and peak FLOP/s behind it, read from the run's own TrainerStarted
// event and PeakBf16FlopsPerSecond, plus the resolved dimensions so the PyTorch reference can be
// checked against them.
//
// --profile adds, per arch, a forward / backward / optimizer breakdown from a separate loop on
// random tokens (same model, bf16 autocast and fused AdamW as training) that synchronises the
// device between phases: those syncs perturb the overlap, so the breakdown is for attribution and
// the throughput table stays sync-free.
//
//   bazel run -c opt --config=cuda //bench:trainer_bench -- --archs=standard,worker --size=seed \
//       --data=/path/to/input.txt
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>
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
#include "bench/bench_rows.h"
#include "common/spec_defaults.h"
#include "gauntlet/v1/spec.pb.h"
#include "gauntlet/v1/trainer.pb.h"
#include "trainer/dist/dist_env.h"
#include "trainer/dist/rendezvous.h"
#include "trainer/kernels/aten_util.h"
#include "trainer/models/model.h"
#include "common/model_config.h"
#include "trainer/models/registry.h"
#include "trainer/train/adamw.h"
#include "common/clock.h"
#include "trainer/train/event_writer.h"
#include "trainer/train/exit_code.h"
#include "trainer/train/peak_flops.h"
#include "trainer/train/train_loop.h"

ABSL_FLAG(std::string, archs, "standard,worker,sparse_depth,hybrid", "Comma-separated archs");
ABSL_FLAG(std::string, size, "",
          "Named model size of --archs (default seed); with --models, replaces every model's size "
          "and the row is named <model>@<size>");
ABSL_FLAG(
    std::string, models, "",
    "Comma-separated benchmark models (seed-standard, seed-worker, seed-sparse_depth, "
    "seed-hybrid, gpt2-small: <size>-<arch>, or a size alone for standard); replaces --archs");
ABSL_FLAG(std::string, json_out, "", "Also write one JSON row per model here");
ABSL_FLAG(int, repeats, 1, "Timed runs per model; tokens/s is their median");
ABSL_FLAG(std::string, data, "data/tinyshakespeare/input.txt",
          "Corpus path (relative to the working directory)");
ABSL_FLAG(int, batch_size, 16, "Sequences per micro-batch");
ABSL_FLAG(int, steps, 50, "Timed steps");
ABSL_FLAG(int, warmup_steps, 10, "Untimed steps first (kernels, allocator, caches)");
ABSL_FLAG(std::string, device, "auto", "auto, cpu or cuda");
ABSL_FLAG(std::string, precision, "auto", "auto, fp32 or bf16");
ABSL_FLAG(bool, force_ddp, false, "Reduce gradients through the communicator at world size 1");
ABSL_FLAG(
    bool, profile, false,
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
absl::StatusOr<PhaseMs> ProfileArch(const std::string& arch, const std::string& size,
                                    const torch::Device& device, bool bf16) {
  v1::ModelSpec spec;
  spec.set_arch(arch);
  spec.set_size(size);
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

// A benchmark model: its row name and what it trains.
struct BenchModel {
  std::string name, arch, size;
};

std::vector<BenchModel> ModelsFromFlags() {
  std::vector<BenchModel> models;
  const std::string size_flag = absl::GetFlag(FLAGS_size);
  const std::string names = absl::GetFlag(FLAGS_models);
  if (names.empty()) {
    const std::string size = size_flag.empty() ? "seed" : size_flag;
    for (absl::string_view arch :
         absl::StrSplit(absl::GetFlag(FLAGS_archs), ',', absl::SkipEmpty())) {
      models.push_back({absl::StrCat(size, "-", arch), std::string(arch), size});
    }
    return models;
  }
  for (absl::string_view name : absl::StrSplit(names, ',', absl::SkipEmpty())) {
    // "<size>-<arch>" when the last dash-separated part is an arch (sizes may hold dashes, archs
    // do not); otherwise the name is a size and the arch is standard. RunTraining rejects an
    // unknown size or arch with an error naming the field.
    BenchModel m{std::string(name), "standard", std::string(name)};
    const size_t dash = name.rfind('-');
    if (dash != absl::string_view::npos) {
      const std::string arch(name.substr(dash + 1));
      if (std::find(KnownArchs().begin(), KnownArchs().end(), arch) != KnownArchs().end()) {
        m.arch = arch;
        m.size = std::string(name.substr(0, dash));
      }
    }
    if (!size_flag.empty()) {
      m.size = size_flag;
      m.name = absl::StrCat(name, "@", size_flag);
    }
    models.push_back(std::move(m));
  }
  return models;
}

// Trains `m` with the real loop: --warmup_steps untimed, then --repeats timed runs of --steps. The
// timed runs report through an events file, whose TrainerStarted says what the run counted.
absl::StatusOr<BenchRow> Bench(const BenchModel& m, const torch::Device& device, Communicator& comm,
                               const std::string& events_path) {
  TrainerOptions options;
  v1::TrialSpec& spec = options.spec;
  spec.mutable_data()->set_path(absl::GetFlag(FLAGS_data));
  spec.mutable_model()->set_arch(m.arch);
  spec.mutable_model()->set_size(m.size);
  spec.mutable_train()->set_batch_size(absl::GetFlag(FLAGS_batch_size));
  spec.mutable_train()->set_precision(absl::GetFlag(FLAGS_precision));
  spec.mutable_train()->set_log_every(1 << 30);  // no per-step host syncs inside the window
  spec.mutable_eval()->set_every_steps(0);
  spec.mutable_eval()->set_max_tokens(1);
  ApplyTrialDefaults(&spec);  // everything not set above, as a trial launched by a worker gets it
  options.device = device;
  options.force_ddp = absl::GetFlag(FLAGS_force_ddp);
  ResetPeakMemory(device);
  MonotonicClock clock;
  spec.mutable_budget()->set_steps(std::max(1, absl::GetFlag(FLAGS_warmup_steps)));
  absl::StatusOr<v1::TrainerSummary> warm = RunTraining(options, comm, clock, TrainerSinks());
  if (!warm.ok()) return warm.status();

  std::remove(events_path.c_str());
  absl::StatusOr<std::unique_ptr<EventWriter>> events = EventWriter::Open(events_path);
  if (!events.ok()) return events.status();
  std::vector<v1::TrainerSummary> runs;
  spec.mutable_budget()->set_steps(std::max(1, absl::GetFlag(FLAGS_steps)));
  for (int r = 0; r < std::max(1, absl::GetFlag(FLAGS_repeats)); ++r) {
    TrainerSinks sinks;
    sinks.events = events->get();
    absl::StatusOr<v1::TrainerSummary> summary = RunTraining(options, comm, clock, sinks);
    if (!summary.ok()) return summary.status();
    runs.push_back(*std::move(summary));
  }
  events->reset();  // flushes and closes
  absl::StatusOr<v1::TrainerStarted> started = ReadTrainerStarted(events_path);
  std::remove(events_path.c_str());
  if (!started.ok()) return started.status();
  absl::StatusOr<ModelConfig> config = ResolveModelConfig(spec.model(), started->vocab_size());
  if (!config.ok()) return config.status();

  BenchRow row;
  for (const v1::TrainerSummary& run : runs)
    row.tokens_per_s_runs.push_back(run.tokens_per_second());
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    return a.tokens_per_second() < b.tokens_per_second();
  });
  const v1::TrainerSummary& median = runs[runs.size() / 2];
  row.model = m.name;
  row.arch = m.arch;
  row.size = m.size;
  // "cuda:0 NVIDIA H200" -> "NVIDIA H200".
  const std::string& device_name = started->device();
  row.gpu = device.is_cuda() && device_name.find(' ') != std::string::npos
                ? device_name.substr(device_name.find(' ') + 1)
                : device_name;
  const std::string precision = absl::GetFlag(FLAGS_precision);
  row.precision = precision == "auto" ? (device.is_cuda() ? "bf16" : "fp32") : precision;
  row.tokens_per_s = median.tokens_per_second();
  row.mfu = median.mfu();
  row.flops_per_token = started->flops_per_token();
  row.peak_flops = PeakBf16FlopsPerSecond(device_name).value_or(0.0);
  row.step_ms = 1e3 / median.steps_per_second();
  row.peak_memory_gib = static_cast<double>(median.peak_memory_bytes()) / (1 << 30);
  row.steps = median.steps();
  row.batch = absl::GetFlag(FLAGS_batch_size);
  row.seq_len = config->seq_len;
  row.vocab_size = config->vocab_size;
  row.params = median.params();
  row.d_model = config->d_model;
  row.n_layers = config->n_layers;
  row.n_heads = config->n_heads;
  row.d_ff = config->d_ff;
  row.dropout = config->dropout;
  return row;
}

int Main() {
  torch::Device device(torch::kCPU);
  const std::string device_flag = absl::GetFlag(FLAGS_device);
  if (device_flag == "cuda" || (device_flag == "auto" && torch::cuda::is_available())) {
    device = torch::Device(torch::kCUDA, 0);
  }
  if (absl::StatusOr<std::string> backend = kernels::ApplySdpaBackendFromEnvironment();
      !backend.ok()) {
    std::cerr << "error: " << backend.status().message() << "\n";
    return 2;
  } else if (!backend->empty()) {
    std::cerr << "attention: " << *backend << " first\n";
  }
  absl::StatusOr<ProcessGroup> group = Rendezvous(DistEnv(), device, std::chrono::seconds(60));
  if (!group.ok()) {
    std::cerr << "error: " << group.status().message() << "\n";
    return static_cast<int>(ExitCode::kDistributed);
  }
  const std::string json_out = absl::GetFlag(FLAGS_json_out);
  const char* tmp = std::getenv("TMPDIR");
  const std::string events_path =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/trainer_bench_events_", ::getpid(), ".jsonl");
  std::cout << "| model | device | batch x T | tok/s | step ms | MFU | peak GiB | params |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  const std::vector<BenchModel> models = ModelsFromFlags();
  std::vector<BenchRow> rows;
  int exit_code = 0;
  for (const BenchModel& m : models) {
    absl::StatusOr<BenchRow> row = Bench(m, device, *group->comm, events_path);
    if (!row.ok()) {
      // The other models still run; the row records the failure and the exit code the first.
      std::cerr << "error: " << m.name << ": " << row.status().message() << "\n";
      if (exit_code == 0) exit_code = static_cast<int>(ExitCodeOf(row.status()));
      BenchRow failed;
      failed.model = m.name;
      failed.arch = m.arch;
      failed.size = m.size;
      failed.batch = absl::GetFlag(FLAGS_batch_size);
      failed.error = std::string(row.status().message());
      rows.push_back(failed);
      continue;
    }
    std::cout << absl::StrFormat("| %s | %s | %d x %d | %.0f | %.1f | %.1f%% | %.2f | %d |\n",
                                 row->model, row->gpu, row->batch, row->seq_len, row->tokens_per_s,
                                 row->step_ms, row->mfu * 100, row->peak_memory_gib, row->params);
    std::cout.flush();
    rows.push_back(*std::move(row));
  }
  if (!json_out.empty()) {
    if (absl::Status s = WriteBenchRows(json_out, rows); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return static_cast<int>(ExitCode::kBadSpec);
    }
  }
  if (exit_code != 0 || !absl::GetFlag(FLAGS_profile)) return exit_code;
  const std::string precision = absl::GetFlag(FLAGS_precision);
  const bool bf16 = device.is_cuda() && precision != "fp32";
  std::cout << "\n| model | forward ms | backward ms | optimizer ms | sum ms |\n"
               "| --- | --- | --- | --- | --- |\n";
  for (const BenchModel& m : models) {
    absl::StatusOr<PhaseMs> phases = ProfileArch(m.arch, m.size, device, bf16);
    if (!phases.ok()) {
      std::cerr << "error: --profile " << m.name << ": " << phases.status().message() << "\n";
      return static_cast<int>(ExitCode::kBadSpec);
    }
    std::cout << absl::StrFormat("| %s | %.2f | %.2f | %.2f | %.2f |\n", m.name, phases->forward,
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
